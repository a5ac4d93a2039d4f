#include "corpus/corpus_store.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "corpus/download.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace fs = std::filesystem;

namespace lmquant {
namespace {

bool has_all_files(const std::string& dir, const CorpusSpec& spec) {
  for (const auto& f : spec.files) {
    std::error_code ec;
    if (!fs::is_regular_file(fs::path(dir) / f.name, ec)) return false;
  }
  return true;
}

// Verifies each file; returns a warning when allow_unverified let a mismatch through.
std::string verify(const std::string& dir, const CorpusSpec& spec, bool allow_unverified) {
  std::string warning;
  for (const auto& f : spec.files) {
    const std::string path = (fs::path(dir) / f.name).string();
    const std::string got = f.digest_of(path);
    if (got == f.digest()) continue;
    const std::string msg = path + " has " + f.digest_name() + " " + got + " but " + spec.name +
                            " expects " + f.digest();
    if (!allow_unverified)
      throw std::runtime_error(msg +
                               "; delete or replace the file (or pass --allow-unverified "
                               "to use it anyway)");
    warning += (warning.empty() ? "warning: " : "; ") + msg;
  }
  return warning;
}

CorpusLocation download_into_cache(const CorpusSpec& spec, const CorpusOptions& options,
                                   const std::string& cache_dir) {
  const std::string final_dir = (fs::path(cache_dir) / spec.folder).string();
  // Files are staged in a private folder and each moved into place only once verified, so a
  // killed download leaves no file under the corpus folder.
  const std::string stage = final_dir + ".download." + std::to_string(::getpid());
  make_directories(stage);
  make_directories(final_dir);
  std::string failures;
  try {
    for (const auto& f : spec.files) {
      const std::string dest = (fs::path(final_dir) / f.name).string();
      if (fs::exists(dest) && f.digest_of(dest) == f.digest()) continue;
      const std::string staged = (fs::path(stage) / f.name).string();
      bool ok = false;
      for (const auto& url : f.urls) {
        try {
          download_file(url, staged, options.progress);
        } catch (const std::exception& e) {
          failures += std::string("\n  ") + e.what();
          continue;
        }
        const std::string got = f.digest_of(staged);
        if (got != f.digest()) {
          failures += "\n  " + url + " served a file with " + f.digest_name() + " " + got +
                      ", expected " + f.digest();
          std::remove(staged.c_str());
          continue;
        }
        if (std::rename(staged.c_str(), dest.c_str()) != 0)
          throw std::runtime_error("cannot move " + staged + " to " + dest);
        ok = true;
        break;
      }
      if (!ok) throw std::runtime_error(f.name);
    }
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(stage, ec);
    throw std::runtime_error(
        "corpus " + spec.name + " not found and could not be downloaded (" + e.what() + ":" +
        failures + ")\nProvide " + spec.folder +
        "/{train,valid,test}.txt in one of: --data-dir DIR, $LMQUANT_DATA, or the cache " +
        cache_dir + " (copy the files there), or connect to the network and run again");
  }
  std::error_code ec;
  fs::remove_all(stage, ec);
  return {spec.name, final_dir, "download", true, ""};
}

}  // namespace

std::string default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "lmquant").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".cache" / "lmquant").string();
  return (fs::temp_directory_path() / "lmquant-cache").string();
}

CorpusLocation locate_corpus(const CorpusSpec& spec, const CorpusOptions& options,
                             const std::string& cache_dir) {
  std::vector<std::pair<std::string, std::string>> candidates;  // (source, root)
  if (!options.data_dir.empty()) candidates.emplace_back("--data-dir", options.data_dir);
  if (const char* env = std::getenv("LMQUANT_DATA"); env && *env)
    candidates.emplace_back("LMQUANT_DATA", env);
  candidates.emplace_back("cache", cache_dir);
  for (const auto& [source, root] : candidates) {
    const std::string dir = (fs::path(root) / spec.folder).string();
    if (!has_all_files(dir, spec)) continue;
    CorpusLocation loc{spec.name, dir, source, false, ""};
    loc.warning = verify(dir, spec, options.allow_unverified);
    loc.verified = loc.warning.empty();
    return loc;
  }
  if (!options.allow_download)
    throw std::runtime_error("corpus " + spec.name + " not found; provide " + spec.folder +
                             "/{train,valid,test}.txt in one of: a data directory, $LMQUANT_DATA, "
                             "or the cache " +
                             cache_dir);
  return download_into_cache(spec, options, cache_dir);
}

CorpusLocation locate_corpus(const std::string& corpus, const CorpusOptions& options) {
  if (is_registered_corpus(corpus))
    return locate_corpus(corpus_spec(corpus), options, default_cache_dir());
  std::error_code ec;
  if (!fs::is_directory(corpus, ec)) {
    std::string valid;
    for (const auto& n : registered_corpora()) valid += (valid.empty() ? "" : ", ") + n;
    throw std::runtime_error(corpus + ": neither a registered corpus (" + valid +
                             ") nor a directory holding train.txt, valid.txt and test.txt");
  }
  for (const char* f : {"train.txt", "valid.txt", "test.txt"}) {
    if (!fs::is_regular_file(fs::path(corpus) / f, ec))
      throw std::runtime_error(corpus + ": missing " + (fs::path(corpus) / f).string() +
                               " (a corpus directory holds train.txt, valid.txt and test.txt)");
  }
  return {corpus, corpus, "directory", false, ""};
}

}  // namespace lmquant
