#include "corpus/vocab.h"

#include <stdexcept>

#include "corpus/word_tokenizer.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace lmquant {

Vocab::Vocab(const Vocab& other) {
  for (const auto& w : other.words_) add(w);
}

Vocab& Vocab::operator=(const Vocab& other) {
  if (this != &other) {
    words_.clear();
    index_.clear();
    for (const auto& w : other.words_) add(w);
  }
  return *this;
}

int64_t Vocab::add(std::string_view word) {
  auto it = index_.find(word);
  if (it != index_.end()) return it->second;
  words_.emplace_back(word);
  const int64_t id = static_cast<int64_t>(words_.size()) - 1;
  index_.emplace(std::string_view(words_.back()), id);
  return id;
}

int64_t Vocab::find(std::string_view word) const {
  auto it = index_.find(word);
  return it == index_.end() ? -1 : it->second;
}

int64_t unknown_word_id(const Vocab& v) {
  const int64_t unk = v.find("<unk>");
  return unk >= 0 ? unk : v.find("xxunk");
}

Vocab read_vocab_file(const std::string& path) {
  const std::string text = read_file(path);
  Vocab v;
  int64_t line = 0;
  for_each_line(text, [&](std::string_view token) {
    ++line;
    if (token.empty())
      throw std::runtime_error(path + ": line " + std::to_string(line) +
                               " is empty (a vocabulary file holds one token per line)");
    const int64_t before = v.find(token);
    if (before >= 0)
      throw std::runtime_error(path + ": token '" + std::string(token) + "' on line " +
                               std::to_string(line) + " is also on line " +
                               std::to_string(before + 1));
    v.add(token);
  });
  if (v.size() == 0) throw std::runtime_error(path + " is empty: a vocabulary needs tokens");
  return v;
}

std::string Vocab::hash() const {
  std::string joined;
  for (const auto& w : words_) {
    joined += w;
    joined += '\n';
  }
  return sha256_bytes(joined);
}

}  // namespace lmquant
