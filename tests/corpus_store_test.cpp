// Corpus lookup, verification, download and cache (corpus/corpus_store.h).
#include <sys/stat.h>

#include <filesystem>

#include "corpus/batching.h"
#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "corpus/word_tokenizer.h"
#include "test_utils.h"
#include "util/sha256.h"

namespace fs = std::filesystem;
using namespace lmquant;
using lmquant::test::TempDir;
using lmquant::test::write_text;

namespace {

// A corpus spec whose files are served from `src` over file://.
CorpusSpec file_spec(const std::string& src, const std::map<std::string, std::string>& texts) {
  CorpusSpec spec{"fixture", "fixture-corpus", "test", {}};
  for (const auto& [name, text] : texts) {
    write_text(src + "/" + name, text);
    spec.files.push_back({name, sha256_bytes(text), static_cast<int64_t>(text.size()),
                          {"file://" + src + "/" + name}});
  }
  return spec;
}

}  // namespace

TEST(CorpusStore, DownloadsVerifiesAndCaches) {
  TempDir src, cache;
  auto spec = file_spec(src.path(), {{"train.txt", "a b\n"}, {"valid.txt", "b\n"}, {"test.txt", "a\n"}});
  ::unsetenv("LMQUANT_DATA");
  auto loc = locate_corpus(spec, {}, cache.path());
  EXPECT_EQ(loc.source, "download");
  EXPECT_TRUE(fs::exists(cache.path() + "/fixture-corpus/train.txt"));
  // No staging folder or partial file is left behind.
  int entries = 0;
  for (auto& e : fs::directory_iterator(cache.path())) entries += e.is_directory() ? 1 : 0;
  EXPECT_EQ(entries, 1);
  auto again = locate_corpus(spec, {}, cache.path());
  EXPECT_EQ(again.source, "cache");
  EXPECT_TRUE(again.verified);
}

TEST(CorpusStore, ChecksumMismatchIsRefusedWithBothHashes) {
  TempDir src, data;
  auto spec = file_spec(src.path(), {{"train.txt", "a b\n"}, {"valid.txt", "b\n"}, {"test.txt", "a\n"}});
  fs::create_directories(data.path() + "/fixture-corpus");
  write_text(data.path() + "/fixture-corpus/train.txt", "tampered\n");
  write_text(data.path() + "/fixture-corpus/valid.txt", "b\n");
  write_text(data.path() + "/fixture-corpus/test.txt", "a\n");
  CorpusOptions o;
  o.data_dir = data.path();
  EXPECT_THROW_MESSAGE(locate_corpus(spec, o, data.path() + "/cache"), std::runtime_error,
                       sha256_bytes("a b\n"));
  EXPECT_THROW_MESSAGE(locate_corpus(spec, o, data.path() + "/cache"), std::runtime_error,
                       sha256_bytes("tampered\n"));
  o.allow_unverified = true;
  auto loc = locate_corpus(spec, o, data.path() + "/cache");
  EXPECT_FALSE(loc.verified);
  EXPECT_NE(loc.warning.find("train.txt"), std::string::npos);
}

TEST(CorpusStore, OfflineFailureNamesTheThreeWays) {
  TempDir cache;
  CorpusSpec spec{"fixture", "fixture-corpus", "", {}};
  for (auto f : {"train.txt", "valid.txt", "test.txt"})
    spec.files.push_back({f, std::string(64, '0'), 1, {"file:///nonexistent/lmquant/" + std::string(f)}});
  ::unsetenv("LMQUANT_DATA");
  try {
    locate_corpus(spec, {}, cache.path());
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--data-dir"), std::string::npos) << m;
    EXPECT_NE(m.find("$LMQUANT_DATA"), std::string::npos) << m;
    EXPECT_NE(m.find(cache.path()), std::string::npos) << m;
  }
  // A failed download leaves no file in the cache's corpus folder.
  EXPECT_FALSE(fs::exists(cache.path() + "/fixture-corpus/train.txt"));
}

