// Finding a corpus on disk, verifying it, and downloading it into the cache when it is missing.
//
// Lookup order for a registered corpus (e.g. "wikitext2", folder "wikitext-2"): the first of
//   1. --data-dir DIR        (DIR/wikitext-2/{train,valid,test}.txt)
//   2. $LMQUANT_DATA
//   3. $XDG_CACHE_HOME/lmquant, else ~/.cache/lmquant
// that holds all three files. Each file's digest must match the registry; a mismatch is refused
// (path and both digests) unless allow_unverified. If none holds them, the files are downloaded
// from the registry's sources into the cache, verified, and moved into place atomically. A corpus
// published as an archive (wikitext103) is extracted from the archive instead: a verified copy
// named as the archive (wikitext-103-v1.zip) in one of the three roots above, else the archive
// downloaded (and deleted once its members are extracted and verified).
// Any other corpus name is taken as a directory holding train.txt, valid.txt and test.txt.
#pragma once
#include <string>

#include "corpus/registry.h"
#include "util/progress.h"

namespace lmquant {

struct CorpusOptions {
  std::string data_dir;           // --data-dir; empty: not given
  bool allow_unverified = false;  // accept files whose SHA-256 differs (warns)
  bool allow_download = true;     // false: no network (a local archive is still extracted)
  Progress progress;              // download progress
};

struct CorpusLocation {
  std::string name;  // "wikitext2" or the directory given
  std::string dir;   // folder holding train.txt, valid.txt, test.txt
  // "--data-dir", "LMQUANT_DATA", "cache", "download", "archive" (extracted from a local copy of
  // the corpus's archive) or "directory"
  std::string source;
  bool verified = false;
  std::string warning;  // non-empty when allow_unverified let a mismatch through
};

// $XDG_CACHE_HOME/lmquant or ~/.cache/lmquant.
std::string default_cache_dir();

// Resolves a corpus name or directory as described above; throws std::runtime_error with what
// to do when it cannot.
CorpusLocation locate_corpus(const std::string& corpus, const CorpusOptions& options);

// The same for an explicit spec (tests use file:// sources); `cache_dir` replaces the default.
CorpusLocation locate_corpus(const CorpusSpec& spec, const CorpusOptions& options,
                             const std::string& cache_dir);

}  // namespace lmquant
