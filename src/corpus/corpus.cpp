#include "corpus/corpus.h"

#include <filesystem>
#include <stdexcept>

#include "corpus/word_tokenizer.h"

namespace lmquant {

std::string to_string(Split s) {
  switch (s) {
    case Split::kTrain: return "train";
    case Split::kValid: return "valid";
    case Split::kTest: return "test";
  }
  return "?";
}

Split parse_split(const std::string& s) {
  if (s == "train") return Split::kTrain;
  if (s == "valid") return Split::kValid;
  if (s == "test") return Split::kTest;
  throw std::invalid_argument("unknown split '" + s + "'; valid values: train, valid, test");
}

const torch::Tensor& Corpus::split(Split s) const {
  switch (s) {
    case Split::kTrain: return train;
    case Split::kValid: return valid;
    default: return test;
  }
}

Corpus load_word_corpus(const CorpusLocation& location) {
  Corpus c;
  c.location = location;
  auto load = [&](const char* name) {
    const std::string path = (std::filesystem::path(location.dir) / name).string();
    std::vector<int64_t> ids = tokenize_file(path, c.vocab);
    if (ids.empty()) throw std::runtime_error(path + " is empty: a corpus split needs text");
    return torch::tensor(ids, torch::kInt64);
  };
  c.train = load("train.txt");
  c.valid = load("valid.txt");
  c.test = load("test.txt");
  return c;
}

}  // namespace lmquant
