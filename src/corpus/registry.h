// The corpus registry: data/corpora.json, compiled into the library. Each corpus names the folder
// its files live in and, per file, its SHA-256, size and download sources (mirrors, in order).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmquant {

struct CorpusFileSpec {
  std::string name;    // "train.txt"
  std::string sha256;  // lowercase hex
  int64_t bytes = 0;
  std::vector<std::string> urls;
};

struct CorpusSpec {
  std::string name;    // "wikitext2"
  std::string folder;  // "wikitext-2"
  std::string description;
  std::vector<CorpusFileSpec> files;  // train, valid, test
};

// Parses a registry (data/corpora.json's schema: {name: {folder, description?, files: {train.txt,
// valid.txt, test.txt: {sha256, bytes, urls}}}}) strictly: an unknown field, a missing split, a
// SHA-256 that is not 64 lowercase hex digits, a negative size, an address that is not http(s)
// or a folder that is not one plain name throws std::runtime_error naming the corpus and field.
std::vector<CorpusSpec> parse_registry(const std::string& json);

// Names of the registered corpora, sorted.
std::vector<std::string> registered_corpora();
// The spec of a registered corpus; throws std::invalid_argument listing the valid names.
CorpusSpec corpus_spec(const std::string& name);
bool is_registered_corpus(const std::string& name);

}  // namespace lmquant
