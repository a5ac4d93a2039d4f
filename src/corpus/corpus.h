// A tokenized corpus: the vocabulary and the train/valid/test id streams.
#pragma once
#include <torch/torch.h>

#include <string>

#include "corpus/corpus_store.h"
#include "corpus/spm_tokenizer.h"
#include "corpus/tokenizer.h"
#include "corpus/vocab.h"

namespace lmquant {

enum class Split { kTrain, kValid, kTest };
std::string to_string(Split s);
// "train", "valid" or "test"; throws std::invalid_argument listing them.
Split parse_split(const std::string& s);

struct Corpus {
  CorpusLocation location;
  std::string tokenizer = "word";  // "word" or "spm:<sha256>", as checkpoints record it
  std::string tokenizer_path;      // the .model file for sentencepiece
  Vocab vocab;                     // words, or sentencepiece pieces in id order
  torch::Tensor train, valid, test;  // int64 id streams, one end-of-line token per line
  int64_t train_words = 0, valid_words = 0, test_words = 0;  // words incl. one <eos> per line
  // A vocabulary file given with the model (TokenizerSpec::vocab_path): its path, and per split
  // the words it did not hold (mapped to its <unk>); empty / 0 when the corpus built its own.
  std::string vocab_path;
  int64_t train_oov = 0, valid_oov = 0, test_oov = 0;

  const torch::Tensor& split(Split s) const;
  // Tokens of a split (its stream's length) and its words (Python str.split() words plus one
  // <eos> per line: what word-normalised perplexity divides by). Equal for the word tokenizer.
  int64_t tokens(Split s) const { return split(s).numel(); }
  int64_t words(Split s) const;
  // tokens / words (1 for the word tokenizer): per-word perplexity = per-token perplexity^this.
  double tokens_per_word(Split s) const {
    return static_cast<double>(tokens(s)) / static_cast<double>(words(s));
  }
};

// Tokenizes the three files of a located corpus with the word tokenizer; the vocabulary is built
// over train, then valid, then test (the ids of pytorch/examples). An empty split is refused.
Corpus load_word_corpus(const CorpusLocation& location);

// The same with the vocabulary of `vocab_path` (read_vocab_file): a line's end is its "<eos>",
// a word it does not hold its "<unk>" (else "xxunk", fastai's), counted per split. A vocabulary
// without "<eos>", or without an unknown-word token when a word needs one, is an error naming
// the file (and the word).
Corpus load_word_corpus(const CorpusLocation& location, const std::string& vocab_path);

// Encodes the three files with a sentencepiece model: each line's pieces, then "</s>".
Corpus load_spm_corpus(const CorpusLocation& location, const SpmTokenizer& spm);

// The corpus under either tokenizer.
Corpus load_corpus(const CorpusLocation& location, const TokenizerSpec& tokenizer);

}  // namespace lmquant
