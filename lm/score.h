// Sentence scoring for NLP pipelines: the log-probability of a sentence under the LM.
// A sentence is split like the corpus (Python's str.split()), followed by <eos>, and scored from
// a fresh hidden state with <eos> as the first input (the sentence boundary):
//   inputs  <eos> w1 ... wn        targets  w1 ... wn <eos>
//   logprob = Σ log p(target | prefix) (natural log), perplexity = exp(-logprob / (n + 1)).
// Words missing from the vocabulary are scored as <unk> when the vocabulary has it (WikiText-2
// does) and counted in `oov`; without <unk> they cannot be scored and the call throws.
#pragma once
#include <string>
#include <string_view>

#include "corpus/vocab.h"
#include "lm/lstm_lm.h"

namespace lmquant {

struct SentenceScore {
  int64_t tokens = 0;  // scored targets, <eos> included
  int64_t oov = 0;
  double logprob = 0;
  double perplexity = 0;
};

class SentenceScorer {
 public:
  SentenceScorer(LstmLm model, Vocab vocab);
  SentenceScore score(std::string_view sentence);
  const Vocab& vocab() const { return vocab_; }

 private:
  LstmLm model_;
  Vocab vocab_;
  int64_t eos_, unk_;
};

}  // namespace lmquant
