#include "lm/score.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "corpus/word_tokenizer.h"
#include "lm/evaluate.h"
#include "lm/nll.h"
#include "util/interrupt.h"

namespace lmquant {

SentenceScorer::SentenceScorer(LstmLm model, Vocab vocab)
    : model_(std::move(model)), vocab_(std::move(vocab)) {
  if (vocab_.size() != model_->config().vocab)
    throw std::invalid_argument("the vocabulary has " + std::to_string(vocab_.size()) +
                                " words but the model " + std::to_string(model_->config().vocab));
  eos_ = vocab_.find(kEos);
  unk_ = unknown_word_id(vocab_);
  if (eos_ < 0) throw std::invalid_argument("the vocabulary has no <eos>");
  model_->eval();
}

SentenceScorer::SentenceScorer(LstmLm model, SpmTokenizer spm)
    : model_(std::move(model)), vocab_(spm.vocab()), spm_(std::move(spm)) {
  if (vocab_.size() != model_->config().vocab)
    throw std::invalid_argument(spm_->path() + " has " + std::to_string(vocab_.size()) +
                                " pieces but the model's vocabulary " +
                                std::to_string(model_->config().vocab));
  eos_ = spm_->eos_id();
  unk_ = spm_->unk_id();
  model_->eval();
}

std::vector<int64_t> SentenceScorer::ids_of(std::string_view sentence, SentenceScore& s) const {
  std::vector<int64_t> ids = {eos_};
  const std::vector<std::string> words = split_words(sentence);
  s.words = static_cast<int64_t>(words.size()) + 1;
  if (spm_) {
    for (int64_t id : spm_->encode(sentence)) {
      s.oov += id == unk_;
      ids.push_back(id);
    }
  } else {
    for (const auto& w : words) {
      int64_t id = vocab_.find(w);
      if (id < 0) {
        ++s.oov;
        if (unk_ < 0)
          throw std::runtime_error("word '" + w + "' is not in the vocabulary, which has no <unk>");
        id = unk_;
      }
      ids.push_back(id);
    }
  }
  ids.push_back(eos_);
  return ids;
}

torch::Tensor SentenceScorer::row_nlls(const torch::Tensor& top,
                                       const torch::Tensor& targets) const {
  const int64_t n = top.size(0);
  auto out = torch::empty({n}, torch::kFloat64);
  for (int64_t r0 = 0; r0 < n; r0 += kScoreRows) {
    const int64_t m = std::min(kScoreRows, n - r0);
    const auto h = top.narrow(0, r0, m);
    const auto y = targets.narrow(0, r0, m);
    out.narrow(0, r0, m).copy_(engine_.decoder_rows
                                   ? engine_.decoder_rows(model_->decoder_input(h), y)
                                   : row_nll(model_->logits(h), y).cpu());
  }
  return out;
}

SentenceScore SentenceScorer::score(std::string_view sentence) {
  return std::move(score_batch({sentence}).front());
}

std::vector<SentenceScore> SentenceScorer::score_batch(
    const std::vector<std::string_view>& sentences, bool token_logprobs) {
  if (engine_.decoder && !engine_.decoder_rows)
    throw std::invalid_argument("the engine's decoder gives no per-row NLL: cannot score with it");
  const size_t n = sentences.size();
  std::vector<SentenceScore> out(n);
  if (n == 0) return out;
  std::vector<std::vector<int64_t>> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = ids_of(sentences[i], out[i]);
  // Columns longest first: the sentences still running at step t are a prefix of the batch.
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ids[a].size() > ids[b].size(); });
  const int64_t B = static_cast<int64_t>(n);
  const int64_t T = static_cast<int64_t>(ids[order[0]].size()) - 1;  // targets of the longest
  std::vector<int64_t> len(n);                                       // targets of column b
  auto tokens = torch::full({T + 1, B}, eos_, torch::kInt64);
  {
    auto acc = tokens.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      const auto& v = ids[order[static_cast<size_t>(b)]];
      len[static_cast<size_t>(b)] = static_cast<int64_t>(v.size()) - 1;
      for (size_t t = 0; t < v.size(); ++t) acc[static_cast<int64_t>(t)][b] = v[t];
    }
  }
  // Per column, its targets' NLL in time order.
  std::vector<torch::Tensor> nll(n);
  for (int64_t b = 0; b < B; ++b)
    nll[static_cast<size_t>(b)] = torch::empty({len[static_cast<size_t>(b)]}, torch::kFloat64);
  torch::NoGradGuard guard;
  const auto device = model_->device();
  auto state = model_->init_state(B);
  int64_t active = B;
  for (int64_t t0 = 0; t0 < T; t0 += kScoreWindow) {
    throw_if_interrupted("scoring");
    while (active > 0 && len[static_cast<size_t>(active - 1)] <= t0) --active;
    if (active < state.h.size(1)) {
      state.h = state.h.narrow(1, 0, active).contiguous();
      state.c = state.c.narrow(1, 0, active).contiguous();
    }
    const int64_t w = std::min(kScoreWindow, T - t0);
    const auto in = tokens.narrow(0, t0, w).narrow(1, 0, active).contiguous().to(device);
    const auto top = engine_.hidden ? engine_.hidden(in, state) : model_->hidden_states(in, state);
    // The real positions of the window, column by column: rows (t − t0)·active + b of top.
    std::vector<int64_t> rows, targets;
    std::vector<std::pair<int64_t, int64_t>> spans;  // per column: (start in rows, count)
    for (int64_t b = 0; b < active; ++b) {
      const auto& v = ids[order[static_cast<size_t>(b)]];
      const int64_t end = std::min(len[static_cast<size_t>(b)], t0 + w);
      spans.emplace_back(static_cast<int64_t>(rows.size()), end - t0);
      for (int64_t t = t0; t < end; ++t) {
        rows.push_back((t - t0) * active + b);
        targets.push_back(v[static_cast<size_t>(t + 1)]);
      }
    }
    const auto index = torch::tensor(rows, torch::kInt64).to(device);
    const auto y = torch::tensor(targets, torch::kInt64).to(device);
    const auto r = row_nlls(top.reshape({w * active, top.size(2)}).index_select(0, index), y);
    for (int64_t b = 0; b < active; ++b) {
      const auto [start, count] = spans[static_cast<size_t>(b)];
      nll[static_cast<size_t>(b)].narrow(0, t0, count).copy_(r.narrow(0, start, count));
    }
  }
  for (int64_t b = 0; b < B; ++b) {
    SentenceScore& s = out[order[static_cast<size_t>(b)]];
    const auto& v = nll[static_cast<size_t>(b)];
    s.tokens = v.numel();
    s.logprob = -v.sum().item<double>();
    if (!std::isfinite(s.logprob)) {
      const std::string bad = model_->first_nonfinite_weight();
      std::string text(sentences[order[static_cast<size_t>(b)]].substr(0, 60));
      throw std::runtime_error(
          "the log-probability of the sentence '" + text + "' is not finite: " +
          (bad.empty() ? std::string("every weight of the model is finite, so an activation "
                                     "overflowed")
                       : "the model's tensor " + bad + " holds NaN or Inf"));
    }
    s.perplexity = perplexity_of_loss(-s.logprob / static_cast<double>(s.tokens));
    s.word_perplexity = perplexity_of_loss(-s.logprob / static_cast<double>(s.words));
    if (token_logprobs) s.token_logprobs = v.neg();
  }
  return out;
}

SentenceScorer scorer_for(const LoadedModel& loaded, const TokenizerSpec& spec,
                          const std::function<Vocab()>& corpus_vocab) {
  if (spec.kind == TokenizerSpec::Kind::kSpm) {
    SpmTokenizer spm = SpmTokenizer::load(spec.path);
    check_tokenizer_matches(loaded, spm.id(), "the input");
    return SentenceScorer(loaded.model, std::move(spm));
  }
  check_tokenizer_matches(loaded, "word", "the input");
  if (loaded.vocab.empty()) {  // PyTorch files carry no vocabulary: the corpus's
    if (!corpus_vocab)
      throw std::invalid_argument(loaded.path + " carries no vocabulary: name its corpus");
    return SentenceScorer(loaded.model, corpus_vocab());
  }
  Vocab vocab;
  for (const auto& w : loaded.vocab) vocab.add(w);
  return SentenceScorer(loaded.model, std::move(vocab));
}

}  // namespace lmquant
