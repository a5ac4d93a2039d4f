// A tokenized corpus: the vocabulary and the train/valid/test id streams.
#pragma once
#include <torch/torch.h>

#include <string>

#include "corpus/corpus_store.h"
#include "corpus/vocab.h"

namespace lmquant {

enum class Split { kTrain, kValid, kTest };
std::string to_string(Split s);
// "train", "valid" or "test"; throws std::invalid_argument listing them.
Split parse_split(const std::string& s);

struct Corpus {
  CorpusLocation location;
  Vocab vocab;
  torch::Tensor train, valid, test;  // int64 id streams, one <eos> per line

  const torch::Tensor& split(Split s) const;
  // Word count of a split incl. <eos> (for word tokenization: its length).
  int64_t tokens(Split s) const { return split(s).numel(); }
};

// Tokenizes the three files of a located corpus with the word tokenizer; the vocabulary is built
// over train, then valid, then test (the ids of pytorch/examples). An empty split is refused.
Corpus load_word_corpus(const CorpusLocation& location);

}  // namespace lmquant
