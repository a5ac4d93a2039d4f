#include "corpus/tokenizer.h"

#include <stdexcept>

namespace lmquant {

TokenizerSpec parse_tokenizer(const std::string& s) {
  if (s == "word") return {};
  if (s.rfind("spm:", 0) == 0 && s.size() > 4) return {TokenizerSpec::Kind::kSpm, s.substr(4)};
  throw std::invalid_argument("unknown tokenizer '" + s +
                              "'; valid values: word, spm:PATH (a sentencepiece .model file)");
}

std::string to_string(const TokenizerSpec& t) {
  return t.kind == TokenizerSpec::Kind::kWord ? "word" : "spm:" + t.path;
}

}  // namespace lmquant
