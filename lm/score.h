// Sentence scoring for NLP pipelines: the log-probability of a sentence under the LM.
// A sentence is split like the corpus (Python's str.split()), followed by <eos>, and scored from
// a fresh hidden state with <eos> as the first input (the sentence boundary):
//   inputs  <eos> w1 ... wn        targets  w1 ... wn <eos>
//   logprob = Σ log p(target | prefix) (natural log), perplexity = exp(-logprob / (n + 1)).
// Words missing from the vocabulary are scored as <unk> when the vocabulary has it (WikiText-2
// does) and counted in `oov`; without <unk> they cannot be scored and the call throws.
// With a sentencepiece model the sentence is its pieces followed by "</s>" (also the first
// input); `oov` counts unknown pieces, and word_perplexity = exp(-logprob / (words + 1)) is
// comparable with a word-level model's perplexity (for which it equals `perplexity`).
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "corpus/spm_tokenizer.h"
#include "corpus/vocab.h"
#include "lm/evaluate.h"
#include "lm/lstm_lm.h"

namespace lmquant {

struct SentenceScore {
  int64_t tokens = 0;  // scored targets, <eos> included
  int64_t words = 0;   // Python str.split() words + 1 (the <eos>)
  int64_t oov = 0;
  double logprob = 0;
  double perplexity = 0;       // per token: exp(-logprob / tokens)
  double word_perplexity = 0;  // per word: exp(-logprob / words)
};

class SentenceScorer {
 public:
  SentenceScorer(LstmLm model, Vocab vocab);
  SentenceScorer(LstmLm model, SpmTokenizer spm);
  SentenceScore score(std::string_view sentence);
  // Runs the LSTM and/or the decoder through an engine's hooks (src/engine/int8_engine.h).
  void set_engine(EngineHooks hooks) { engine_ = std::move(hooks); }
  const Vocab& vocab() const { return vocab_; }

 private:
  LstmLm model_;
  Vocab vocab_;
  std::optional<SpmTokenizer> spm_;
  EngineHooks engine_;
  int64_t eos_, unk_;
};

}  // namespace lmquant
