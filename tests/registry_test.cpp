// The corpus registry (corpus/registry.h): the registered corpora, and files checked by MD5
// where no SHA-256 is published.
#include "corpus/registry.h"

#include <cstdlib>
#include <filesystem>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "test_utils.h"
#include "util/sha256.h"

using namespace lmquant;

TEST(Registry, PennTreebankIsRegisteredWithItsDigests) {
  const CorpusSpec ptb = corpus_spec("ptb");
  EXPECT_EQ(ptb.folder, "ptb");
  ASSERT_EQ(ptb.files.size(), 3u);
  EXPECT_EQ(ptb.files[0].name, "train.txt");
  EXPECT_EQ(ptb.files[0].digest_name(), "MD5");  // torchtext's: no SHA-256 is published
  EXPECT_EQ(ptb.files[0].digest(), "f26c4b92c5fdc7b3f8c7cdcb991d8420");
  EXPECT_EQ(ptb.files[1].digest_name(), "SHA-256");
  EXPECT_EQ(ptb.files[1].bytes, 399782);
  EXPECT_EQ(ptb.files[2].bytes, 449945);
  for (const auto& f : ptb.files) EXPECT_GE(f.urls.size(), 2u) << f.name;
  EXPECT_EQ(registered_corpora(), (std::vector<std::string>{"ptb", "wikitext2"}));
}

TEST(Registry, AFileHasExactlyOneDigest) {
  const std::string sha = "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f";
  auto registry = [&](const std::string& train) {
    return R"({"c": {"folder": "c", "files": {"train.txt": )" + train +
           R"(, "valid.txt": {"sha256": ")" + sha + R"(", "urls": []}, "test.txt": {"sha256": ")" +
           sha + R"(", "urls": []}}}})";
  };
  const auto ok =
      parse_registry(registry(R"({"md5": "f26c4b92c5fdc7b3f8c7cdcb991d8420", "urls": []})"));
  EXPECT_EQ(ok.at(0).files.at(0).md5, "f26c4b92c5fdc7b3f8c7cdcb991d8420");
  EXPECT_TRUE(ok.at(0).files.at(0).sha256.empty());
  EXPECT_THROW_MESSAGE(parse_registry(registry(R"({"urls": []})")), std::runtime_error,
                       "give its sha256 (or, where none is published, its md5)");
  EXPECT_THROW_MESSAGE(
      parse_registry(registry(R"({"sha256": ")" + sha +
                              R"(", "md5": "f26c4b92c5fdc7b3f8c7cdcb991d8420", "urls": []})")),
      std::runtime_error, "give its sha256");
  EXPECT_THROW_MESSAGE(parse_registry(registry(R"({"md5": "F26C", "urls": []})")),
                       std::runtime_error, "md5 is not 32 lowercase hex digits");
}

TEST(Registry, AnMd5FileIsVerifiedDownloadedAndRefused) {
  test::TempDir src, cache;
  CorpusSpec spec{"fixture", "md5-corpus", "test", {}};
  for (const std::string name : {"train.txt", "valid.txt", "test.txt"}) {
    test::write_text(src.file(name), name + " words\n");
    CorpusFileSpec f{name, "", 0, {"file://" + src.file(name)}, ""};
    if (name == "train.txt")
      f.md5 = md5_file(src.file(name));
    else
      f.sha256 = sha256_file(src.file(name));
    spec.files.push_back(f);
  }
  // Without $LMQUANT_DATA for the lookup (restored after: later tests in this process read it).
  const char* env = std::getenv("LMQUANT_DATA");
  const std::string saved = env ? env : "";
  ::unsetenv("LMQUANT_DATA");
  struct Restore {
    std::string value;
    ~Restore() {
      if (!value.empty()) ::setenv("LMQUANT_DATA", value.c_str(), 1);
    }
  } restore{saved};
  const CorpusLocation loc = locate_corpus(spec, {}, cache.path());
  EXPECT_EQ(loc.source, "download");
  EXPECT_TRUE(loc.verified);
  EXPECT_EQ(locate_corpus(spec, {}, cache.path()).source, "cache");
  // A train file that is not the registered one: its MD5 named.
  test::write_text(cache.path() + "/md5-corpus/train.txt", "other words\n");
  CorpusOptions o;
  o.allow_download = false;
  EXPECT_THROW_MESSAGE(locate_corpus(spec, o, cache.path()), std::runtime_error,
                       "has MD5 " + md5_file(cache.path() + "/md5-corpus/train.txt") +
                           " but fixture expects " + spec.files[0].md5);
}

TEST(RealData, PennTreebankCountsAndDigests) {
  const std::string root = test::real_data_dir();
  if (root.empty() || !std::filesystem::exists(root + "/ptb/train.txt"))
    GTEST_SKIP() << "PTB not available: put ptb/{train,valid,test}.txt under LMQUANT_DATA "
                    "(lmquant corpus --corpus ptb downloads them into the cache)";
  CorpusOptions o;
  o.data_dir = root;
  o.allow_download = false;
  const CorpusLocation loc = locate_corpus("ptb", o);
  EXPECT_TRUE(loc.verified);
  const Corpus c = load_word_corpus(loc);
  EXPECT_EQ(c.vocab.size(), 10000);
  EXPECT_EQ(c.train.numel(), 929589);
  EXPECT_EQ(c.valid.numel(), 73760);
  EXPECT_EQ(c.test.numel(), 82430);
}
