#include "corpus/vocab.h"

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

std::string Vocab::hash() const {
  std::string joined;
  for (const auto& w : words_) {
    joined += w;
    joined += '\n';
  }
  return sha256_bytes(joined);
}

}  // namespace lmquant
