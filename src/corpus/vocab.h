// A word vocabulary: ids in first-occurrence order, as pytorch/examples' Dictionary.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lmquant {

class Vocab {
 public:
  Vocab() = default;
  Vocab(const Vocab& other);
  Vocab& operator=(const Vocab& other);
  Vocab(Vocab&&) = default;
  Vocab& operator=(Vocab&&) = default;

  // The id of `word`, adding it at the end when new.
  int64_t add(std::string_view word);
  // The id of `word`, or -1.
  int64_t find(std::string_view word) const;
  const std::string& word(int64_t id) const { return words_.at(static_cast<size_t>(id)); }
  int64_t size() const { return static_cast<int64_t>(words_.size()); }
  // SHA-256 of the words joined by '\n': two vocabularies with the same hash give the same ids.
  std::string hash() const;
  std::vector<std::string> words() const { return {words_.begin(), words_.end()}; }

 private:
  std::deque<std::string> words_;  // deque: stable addresses for the string_view keys
  std::unordered_map<std::string_view, int64_t> index_;
};

// The id words outside `v` take: "<unk>" (pytorch/examples', WikiText's), else "xxunk"
// (fastai's), else -1 (none: such words cannot be encoded).
int64_t unknown_word_id(const Vocab& v);

// A vocabulary that comes with a model (`--vocab FILE`): one token per line, id = line number − 1,
// lines ending in "\n", "\r\n" or "\r" (fastai's itos list written with '\n'.join(itos) reads as
// is). An empty file, an empty line or a token given twice is a std::runtime_error naming the
// file and line.
Vocab read_vocab_file(const std::string& path);

}  // namespace lmquant
