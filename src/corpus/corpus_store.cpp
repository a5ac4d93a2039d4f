#include "corpus/corpus_store.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "corpus/download.h"
#include "util/atomic_file.h"
#include "util/sha256.h"
#include "util/zip_archive.h"

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

// The roots searched, in order: --data-dir, $LMQUANT_DATA, the cache.
std::vector<std::pair<std::string, std::string>> lookup_roots(const CorpusOptions& options,
                                                              const std::string& cache_dir) {
  std::vector<std::pair<std::string, std::string>> roots;  // (source, root)
  if (!options.data_dir.empty()) roots.emplace_back("--data-dir", options.data_dir);
  if (const char* env = std::getenv("LMQUANT_DATA"); env && *env)
    roots.emplace_back("LMQUANT_DATA", env);
  roots.emplace_back("cache", cache_dir);
  return roots;
}

// Downloads `f` from its sources, in order, to `staged` until one serves the registered file;
// what each failure was is appended to `failures`.
bool fetch(const CorpusFileSpec& f, const std::string& staged, const Progress& progress,
           std::string& failures) {
  for (const auto& url : f.urls) {
    try {
      download_file(url, staged, progress);
    } catch (const std::exception& e) {
      failures += std::string("\n  ") + e.what();
      continue;
    }
    const std::string got = f.digest_of(staged);
    if (got == f.digest()) return true;
    failures += "\n  " + url + " served a file with " + f.digest_name() + " " + got +
                ", expected " + f.digest();
    std::remove(staged.c_str());
  }
  return false;
}

// The corpus's archive, verified: a copy named as the archive in one of the lookup roots, else
// (when downloads are allowed) downloaded into `stage`. Sets `downloaded`.
std::string obtain_archive(const CorpusSpec& spec, const CorpusOptions& options,
                           const std::string& cache_dir, const std::string& stage,
                           std::string& failures, bool& downloaded) {
  const CorpusFileSpec& a = *spec.archive;
  for (const auto& [source, root] : lookup_roots(options, cache_dir)) {
    const std::string local = (fs::path(root) / a.name).string();
    std::error_code ec;
    if (!fs::is_regular_file(local, ec)) continue;
    const std::string got = a.digest_of(local);
    if (got == a.digest()) return local;
    failures += "\n  " + local + " has " + a.digest_name() + " " + got + ", expected " + a.digest();
  }
  downloaded = true;
  const std::string staged = (fs::path(stage) / a.name).string();
  if (options.allow_download && fetch(a, staged, options.progress, failures)) return staged;
  throw std::runtime_error(a.name + (options.allow_download ? "" : ": downloads are off"));
}

// Fetches (or extracts from the corpus's archive) each file missing from the cache's corpus
// folder. Files are staged in a private folder and each moved into place only once verified, so
// a killed download leaves no file under the corpus folder.
CorpusLocation download_into_cache(const CorpusSpec& spec, const CorpusOptions& options,
                                   const std::string& cache_dir) {
  const std::string final_dir = (fs::path(cache_dir) / spec.folder).string();
  const std::string stage = final_dir + ".download." + std::to_string(::getpid());
  make_directories(stage);
  make_directories(final_dir);
  std::string failures;
  bool downloaded = !spec.archive;
  try {
    std::optional<ZipArchive> archive;  // opened when a file is first needed from it
    for (const auto& f : spec.files) {
      const std::string dest = (fs::path(final_dir) / f.name).string();
      if (fs::exists(dest) && f.digest_of(dest) == f.digest()) continue;
      const std::string staged = (fs::path(stage) / f.name).string();
      if (spec.archive) {
        if (!archive)
          archive.emplace(obtain_archive(spec, options, cache_dir, stage, failures, downloaded));
        archive->extract(f.member, staged);
        const std::string got = f.digest_of(staged);
        if (got != f.digest())
          throw std::runtime_error(archive->path() + ": member " + f.member + " has " +
                                   f.digest_name() + " " + got + ", expected " + f.digest());
      } else if (!fetch(f, staged, options.progress, failures)) {
        throw std::runtime_error(f.name);
      }
      if (std::rename(staged.c_str(), dest.c_str()) != 0)
        throw std::runtime_error("cannot move " + staged + " to " + dest);
    }
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(stage, ec);
    fs::remove(final_dir, ec);  // only when empty: files verified earlier stay
    std::string archive_hint;
    if (spec.archive) archive_hint = ", or the archive " + spec.archive->name + " itself,";
    throw std::runtime_error(
        "corpus " + spec.name + " not found and could not be downloaded" +
        (spec.archive ? " or extracted" : "") + " (" + e.what() + ":" + failures + ")\nProvide " +
        spec.folder + "/{train,valid,test}.txt" + archive_hint +
        " in one of: --data-dir DIR, $LMQUANT_DATA, or the cache " + cache_dir +
        " (copy the files there), or connect to the network and run again");
  }
  std::error_code ec;
  fs::remove_all(stage, ec);
  return {spec.name, final_dir, downloaded ? "download" : "archive", true, ""};
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
  for (const auto& [source, root] : lookup_roots(options, cache_dir)) {
    const std::string dir = (fs::path(root) / spec.folder).string();
    if (!has_all_files(dir, spec)) continue;
    CorpusLocation loc{spec.name, dir, source, false, ""};
    loc.warning = verify(dir, spec, options.allow_unverified);
    loc.verified = loc.warning.empty();
    return loc;
  }
  // A corpus published as an archive is still extracted from a local copy of it.
  if (!options.allow_download && !spec.archive)
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
