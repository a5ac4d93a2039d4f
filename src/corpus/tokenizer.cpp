#include "corpus/tokenizer.h"

#include <stdexcept>

namespace lmquant {

TokenizerSpec parse_tokenizer(const std::string& s) {
  if (s == "word") return {};
  if (s.rfind("spm:", 0) == 0 && s.size() > 4) return {TokenizerSpec::Kind::kSpm, s.substr(4)};
  throw std::invalid_argument("unknown tokenizer '" + s +
                              "'; valid values: word, spm:PATH (a sentencepiece .model file)");
}

TokenizerSpec with_vocab_file(TokenizerSpec spec, const std::string& path) {
  if (path.empty()) return spec;
  if (spec.kind != TokenizerSpec::Kind::kWord)
    throw std::invalid_argument(path + ": a vocabulary file goes with the word tokenizer, not " +
                                to_string(spec));
  spec.vocab_path = path;
  return spec;
}

std::string to_string(const TokenizerSpec& t) {
  return t.kind == TokenizerSpec::Kind::kWord ? "word" : "spm:" + t.path;
}

}  // namespace lmquant
