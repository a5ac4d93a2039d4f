// Which tokenizer turns corpus text into ids: the word tokenizer of pytorch/examples ("word") or a
// sentencepiece model ("spm:PATH", see spm_tokenizer.h). Checkpoints record the tokenizer as
// "word" or "spm:<sha256 of the .model file>" and refuse a corpus tokenized otherwise.
#pragma once
#include <string>

namespace lmquant {

struct TokenizerSpec {
  enum class Kind { kWord, kSpm };
  Kind kind = Kind::kWord;
  std::string path;  // the .model file for kSpm
  // kWord: a vocabulary file that comes with the model (corpus/vocab.h read_vocab_file) instead
  // of the one built from the corpus; "" builds it (pytorch/examples' ids).
  std::string vocab_path;
};

// `spec` with the vocabulary file `path` (TokenizerSpec::vocab_path); "" leaves it as it is.
// Throws std::invalid_argument for a sentencepiece spec (its pieces are its vocabulary).
TokenizerSpec with_vocab_file(TokenizerSpec spec, const std::string& path);

// "word" or "spm:PATH"; throws std::invalid_argument listing the valid forms.
TokenizerSpec parse_tokenizer(const std::string& s);
std::string to_string(const TokenizerSpec& t);

}  // namespace lmquant
