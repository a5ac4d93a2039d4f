// Sentence scoring for NLP pipelines: the log-probability of a sentence under the LM.
// A sentence is split like the corpus (Python's str.split()), followed by <eos>, and scored from
// a fresh hidden state with <eos> as the first input (the sentence boundary):
//   inputs  <eos> w1 ... wn        targets  w1 ... wn <eos>
//   logprob = Σ log p(target | prefix) (natural log), perplexity = exp(-logprob / (n + 1)).
// Words missing from the vocabulary are scored as <unk> (else xxunk, fastai's) when the
// vocabulary has it (WikiText-2 does) and counted in `oov`; without <unk> they cannot be scored and the call throws.
// With a sentencepiece model the sentence is its pieces followed by "</s>" (also the first
// input); `oov` counts unknown pieces, and word_perplexity = exp(-logprob / (words + 1)) is
// comparable with a word-level model's perplexity (for which it equals `perplexity`).
//
// score_batch scores several sentences at once: they run through the LSTM side by side as the
// columns of one [T, B] batch (longest first; a column leaves the batch when its sentence ends,
// so padding costs nothing), time in windows of kScoreWindow steps with the state carried, and
// the decoder on the batch's real positions only, kScoreRows rows at a time — memory stays
// bounded for a 100k-word sentence. A sentence's numbers do not depend on the others in its
// batch beyond float rounding (~1e-6 relative: the matrix products see other shapes); the same
// batches give the same numbers to the last digit (lmquant score --batch-size and the Python
// module's score(batch_size=) call this one function).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "corpus/spm_tokenizer.h"
#include "corpus/tokenizer.h"
#include "corpus/vocab.h"
#include "lm/evaluate.h"
#include "lm/lstm_lm.h"
#include "lm/model_io.h"

namespace lmquant {

struct SentenceScore {
  int64_t tokens = 0;  // scored targets, <eos> included
  int64_t words = 0;   // Python str.split() words + 1 (the <eos>)
  int64_t oov = 0;
  double logprob = 0;
  double perplexity = 0;       // per token: exp(-logprob / tokens)
  double word_perplexity = 0;  // per word: exp(-logprob / words)
  // With token_logprobs: log p(target_i | prefix) of each target, [tokens] float64 (the last is
  // the <eos>); Σ = logprob. Undefined otherwise.
  torch::Tensor token_logprobs;
};

constexpr int64_t kScoreWindow = 256;  // time steps per LSTM call in score_batch
constexpr int64_t kScoreRows = 512;    // decoder rows per product in score_batch

class SentenceScorer {
 public:
  SentenceScorer(LstmLm model, Vocab vocab);
  SentenceScorer(LstmLm model, SpmTokenizer spm);
  SentenceScore score(std::string_view sentence);
  // The sentences scored as one batch (see above), in the given order.
  std::vector<SentenceScore> score_batch(const std::vector<std::string_view>& sentences,
                                         bool token_logprobs = false);
  // Runs the LSTM and/or the decoder through an engine's hooks (src/engine/int8_engine.h).
  void set_engine(EngineHooks hooks) { engine_ = std::move(hooks); }
  const Vocab& vocab() const { return vocab_; }

 private:
  LstmLm model_;
  Vocab vocab_;
  std::optional<SpmTokenizer> spm_;
  EngineHooks engine_;
  int64_t eos_, unk_;
  std::vector<int64_t> ids_of(std::string_view sentence, SentenceScore& s) const;
  // NLL of each decoder row: top [N, H] (top-layer outputs), targets [N] -> [N] float64.
  torch::Tensor row_nlls(const torch::Tensor& top, const torch::Tensor& targets) const;
};

// The scorer of a loaded model with the tokenizer `spec` (tokenizer_of(loaded) for its own): a
// sentencepiece model's pieces, or the words of the vocabulary the checkpoint carries — or, for
// files that carry none (PyTorch state_dicts), of `corpus_vocab()`. Throws TokenizerMismatch
// when the model was trained with another tokenizer.
SentenceScorer scorer_for(const LoadedModel& loaded, const TokenizerSpec& spec,
                          const std::function<Vocab()>& corpus_vocab);

}  // namespace lmquant
