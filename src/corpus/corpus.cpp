#include "corpus/corpus.h"

#include <filesystem>
#include <stdexcept>

#include "corpus/word_tokenizer.h"
#include "util/atomic_file.h"

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

int64_t Corpus::words(Split s) const {
  switch (s) {
    case Split::kTrain: return train_words;
    case Split::kValid: return valid_words;
    default: return test_words;
  }
}

namespace {

// The three splits of a word corpus, train then valid then test: `ids_of(path, oov)` tokenizes
// one file (counting words outside a fixed vocabulary in `oov`); an empty split is refused.
template <class F>
void load_word_splits(Corpus& c, F&& ids_of) {
  auto load = [&](const char* name, int64_t& oov) {
    const std::string path = (std::filesystem::path(c.location.dir) / name).string();
    const std::vector<int64_t> ids = ids_of(path, oov);
    if (ids.empty()) throw std::runtime_error(path + " is empty: a corpus split needs text");
    return torch::tensor(ids, torch::kInt64);
  };
  c.train = load("train.txt", c.train_oov);
  c.valid = load("valid.txt", c.valid_oov);
  c.test = load("test.txt", c.test_oov);
  c.train_words = c.train.numel(), c.valid_words = c.valid.numel(), c.test_words = c.test.numel();
}

}  // namespace

Corpus load_word_corpus(const CorpusLocation& location) {
  Corpus c;
  c.location = location;
  load_word_splits(c,
                   [&](const std::string& path, int64_t&) { return tokenize_file(path, c.vocab); });
  return c;
}

Corpus load_word_corpus(const CorpusLocation& location, const std::string& vocab_path) {
  Corpus c;
  c.location = location;
  c.vocab_path = vocab_path;
  c.vocab = read_vocab_file(vocab_path);
  const int64_t eos = c.vocab.find(kEos);
  if (eos < 0)
    throw std::runtime_error(vocab_path +
                             ": the vocabulary has no <eos> (the end-of-line token of "
                             "pytorch/examples' ids)");
  const int64_t unk = unknown_word_id(c.vocab);
  load_word_splits(c, [&](const std::string& path, int64_t& oov) {
    const std::string text = read_file(path);
    std::vector<int64_t> ids;
    ids.reserve(text.size() / 5);
    for_each_word(text, path, [&](std::string_view w) {
      if (is_line_end(w)) return ids.push_back(eos);
      int64_t id = c.vocab.find(w);
      if (id < 0) {
        if (unk < 0)
          throw std::runtime_error(vocab_path + ": the vocabulary has no <unk> (or xxunk) for '" +
                                   std::string(w) + "' of " + path);
        id = unk;
        ++oov;
      }
      ids.push_back(id);
    });
    return ids;
  });
  return c;
}

Corpus load_spm_corpus(const CorpusLocation& location, const SpmTokenizer& spm) {
  Corpus c;
  c.location = location;
  c.tokenizer = spm.id();
  c.tokenizer_path = spm.path();
  c.vocab = spm.vocab();
  auto load = [&](const char* name, int64_t& words) {
    const std::string path = (std::filesystem::path(location.dir) / name).string();
    const std::string text = read_file(path);
    std::vector<int64_t> ids;
    ids.reserve(text.size() / 3);
    // The word tokenizer's count (and its UTF-8 check, which names the line), then the same
    // lines through sentencepiece.
    words = 0;
    for_each_word(text, path, [&](std::string_view) { ++words; });
    for_each_line(text, [&](std::string_view line) {
      const std::vector<int64_t> piece_ids = spm.encode(line);
      ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
      ids.push_back(spm.eos_id());
    });
    if (ids.empty()) throw std::runtime_error(path + " is empty: a corpus split needs text");
    return torch::tensor(ids, torch::kInt64);
  };
  c.train = load("train.txt", c.train_words);
  c.valid = load("valid.txt", c.valid_words);
  c.test = load("test.txt", c.test_words);
  return c;
}

Corpus load_corpus(const CorpusLocation& location, const TokenizerSpec& tokenizer) {
  if (tokenizer.kind == TokenizerSpec::Kind::kWord)
    return tokenizer.vocab_path.empty() ? load_word_corpus(location)
                                        : load_word_corpus(location, tokenizer.vocab_path);
  return load_spm_corpus(location, SpmTokenizer::load(tokenizer.path));
}

}  // namespace lmquant
