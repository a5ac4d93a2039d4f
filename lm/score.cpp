#include "lm/score.h"

#include <cmath>
#include <stdexcept>

#include "corpus/word_tokenizer.h"
#include "lm/evaluate.h"
#include "lm/nll.h"

namespace lmquant {

SentenceScorer::SentenceScorer(LstmLm model, Vocab vocab)
    : model_(std::move(model)), vocab_(std::move(vocab)) {
  if (vocab_.size() != model_->config().vocab)
    throw std::invalid_argument("the vocabulary has " + std::to_string(vocab_.size()) +
                                " words but the model " + std::to_string(model_->config().vocab));
  eos_ = vocab_.find(kEos);
  unk_ = vocab_.find("<unk>");
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

SentenceScore SentenceScorer::score(std::string_view sentence) {
  SentenceScore s;
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
  torch::NoGradGuard guard;
  auto t = torch::tensor(ids, torch::kInt64).to(model_->device());
  const int64_t n = t.numel() - 1;
  auto state = model_->init_state(1);
  const auto in = t.narrow(0, 0, n).view({n, 1});
  const auto targets = t.narrow(0, 1, n);
  auto top = engine_.hidden ? engine_.hidden(in, state) : model_->hidden_states(in, state);
  s.tokens = n;
  s.logprob = engine_.decoder ? -engine_.decoder(model_->decoder_input(top), targets)
                              : -sum_nll(model_->logits(top), targets);
  s.perplexity = perplexity_of_loss(-s.logprob / static_cast<double>(n));
  s.word_perplexity = perplexity_of_loss(-s.logprob / static_cast<double>(s.words));
  return s;
}

}  // namespace lmquant
