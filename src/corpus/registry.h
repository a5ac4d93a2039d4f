// The corpus registry: data/corpora.json, compiled into the library. Each corpus names the folder
// its files live in and, per file, its digest, size and download sources (mirrors, in order).
// A file is checked by its SHA-256; where nobody publishes one, by the SHA-1 or MD5 its
// distributors publish (PTB's train file: torchtext's MD5; WikiText-103's files: GluonNLP's SHA-1,
// whose WikiText-2 SHA-1s match the files here), named as such.
// A corpus published only as an archive (WikiText-103: wikitext-103-v1.zip) names the archive
// (its digest and sources) and, per file, the member it is extracted from.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lmquant {

struct CorpusFileSpec {
  std::string name;               // "train.txt"; an archive's own name ("wikitext-103-v1.zip")
  std::string sha256;             // lowercase hex; empty when only `sha1` or `md5` is known
  int64_t bytes = 0;              // 0: not known
  std::vector<std::string> urls;  // empty for a file extracted from the corpus's archive
  std::string md5;                // lowercase hex, only where no SHA-256 or SHA-1 is known
  std::string sha1;               // lowercase hex, only where no SHA-256 is known
  std::string member;  // the path inside the corpus's archive ("wikitext-103/wiki.train.tokens")

  // The digest the file is checked by: "SHA-256", "SHA-1" or "MD5" (exactly one is given), its
  // expected value, and the file's own (reads the file).
  std::string digest_name() const;
  const std::string& digest() const;
  std::string digest_of(const std::string& path) const;
};

struct CorpusSpec {
  std::string name;    // "wikitext2"
  std::string folder;  // "wikitext-2"
  std::string description;
  std::vector<CorpusFileSpec> files;  // train, valid, test
  // Set when the files are published only inside an archive: its name, digest and sources; each
  // file then names its `member`.
  std::optional<CorpusFileSpec> archive;
};

// Parses a registry (data/corpora.json's schema: {name: {folder, description?, archive?: {name,
// sha256 | sha1 | md5, bytes?, urls}, files: {train.txt, valid.txt, test.txt: {sha256 | sha1 | md5,
// bytes?, urls | member}}}}) strictly: an unknown field, a missing split, a digest that is not
// lowercase hex of its length (SHA-256 64, SHA-1 40, MD5 32), more or fewer than one digest, a
// negative size, an address that is not http(s), a file with sources in an archive corpus (or a
// member outside one), a member or archive name that leaves its folder, or a folder that is not
// one plain name throws std::runtime_error naming the corpus and field.
std::vector<CorpusSpec> parse_registry(const std::string& json);

// Names of the registered corpora, sorted.
std::vector<std::string> registered_corpora();
// The spec of a registered corpus; throws std::invalid_argument listing the valid names.
CorpusSpec corpus_spec(const std::string& name);
bool is_registered_corpus(const std::string& name);

}  // namespace lmquant
