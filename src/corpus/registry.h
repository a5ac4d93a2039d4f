// The corpus registry: data/corpora.json, compiled into the library. Each corpus names the folder
// its files live in and, per file, its SHA-256, size and download sources (mirrors, in order).
// A file whose SHA-256 nobody publishes (PTB's train file: the repositories that serve it store
// it beyond what can be read here) is checked by the MD5 its distributors publish instead
// (torchtext's, which also matches the valid and test files' here), named as such.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmquant {

struct CorpusFileSpec {
  std::string name;    // "train.txt"
  std::string sha256;  // lowercase hex; empty when only `md5` is known
  int64_t bytes = 0;   // 0: not known
  std::vector<std::string> urls;
  std::string md5;  // lowercase hex, only where no SHA-256 is known

  // The digest the file is checked by: "SHA-256" (else "MD5"), its expected value, and the
  // file's own (reads the file).
  std::string digest_name() const { return sha256.empty() ? "MD5" : "SHA-256"; }
  const std::string& digest() const { return sha256.empty() ? md5 : sha256; }
  std::string digest_of(const std::string& path) const;
};

struct CorpusSpec {
  std::string name;    // "wikitext2"
  std::string folder;  // "wikitext-2"
  std::string description;
  std::vector<CorpusFileSpec> files;  // train, valid, test
};

// Parses a registry (data/corpora.json's schema: {name: {folder, description?, files: {train.txt,
// valid.txt, test.txt: {sha256 or md5, bytes?, urls}}}}) strictly: an unknown field, a missing
// split, a SHA-256 that is not 64 lowercase hex digits (an MD5: 32), both or neither, a negative
// size, an address that is not http(s) or a folder that is not one plain name throws
// std::runtime_error naming the corpus and field.
std::vector<CorpusSpec> parse_registry(const std::string& json);

// Names of the registered corpora, sorted.
std::vector<std::string> registered_corpora();
// The spec of a registered corpus; throws std::invalid_argument listing the valid names.
CorpusSpec corpus_spec(const std::string& name);
bool is_registered_corpus(const std::string& name);

}  // namespace lmquant
