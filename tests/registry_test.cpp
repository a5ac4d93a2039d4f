// The corpus registry (corpus/registry.h): the registered corpora, files checked by SHA-1 or MD5
// where no SHA-256 is published, and corpora published only as an archive (WikiText-103).
#include "corpus/registry.h"

#include <cstdlib>
#include <filesystem>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "test_utils.h"
#include "util/atomic_file.h"
#include "util/sha256.h"
#include "util/zip_archive.h"

using namespace lmquant;

namespace {

// $LMQUANT_DATA unset for a lookup, restored after (later tests in this process read it).
class WithoutDataEnv {
 public:
  WithoutDataEnv() {
    if (const char* env = std::getenv("LMQUANT_DATA")) saved_ = env;
    ::unsetenv("LMQUANT_DATA");
  }
  ~WithoutDataEnv() {
    if (!saved_.empty()) ::setenv("LMQUANT_DATA", saved_.c_str(), 1);
  }

 private:
  std::string saved_;
};

}  // namespace

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
  EXPECT_EQ(registered_corpora(), (std::vector<std::string>{"ptb", "wikitext103", "wikitext2"}));
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
  EXPECT_THROW_MESSAGE(
      parse_registry(registry(R"({"urls": []})")), std::runtime_error,
      "give one digest: its sha256 (or, where none is published, its sha1 or md5)");
  EXPECT_THROW_MESSAGE(
      parse_registry(registry(R"({"sha256": ")" + sha +
                              R"(", "md5": "f26c4b92c5fdc7b3f8c7cdcb991d8420", "urls": []})")),
      std::runtime_error, "give one digest");
  EXPECT_THROW_MESSAGE(
      parse_registry(registry(R"({"sha1": "b7497e2dfe77e72cfef5e3dbc61b7b53712ac211", "md5": )"
                              R"("f26c4b92c5fdc7b3f8c7cdcb991d8420", "urls": []})")),
      std::runtime_error, "give one digest");
  EXPECT_THROW_MESSAGE(parse_registry(registry(R"({"sha1": "b7497e2d", "urls": []})")),
                       std::runtime_error, "sha1 is not 40 lowercase hex digits");
  EXPECT_EQ(parse_registry(registry(R"({"sha1": "b7497e2dfe77e72cfef5e3dbc61b7b53712ac211", )"
                                    R"("urls": []})"))
                .at(0)
                .files.at(0)
                .digest_name(),
            "SHA-1");
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
  const WithoutDataEnv no_data;
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

TEST(Registry, WikiText103IsExtractedFromItsArchive) {
  const CorpusSpec wt = corpus_spec("wikitext103");
  EXPECT_EQ(wt.folder, "wikitext-103");
  ASSERT_TRUE(wt.archive.has_value());
  EXPECT_EQ(wt.archive->name, "wikitext-103-v1.zip");
  EXPECT_EQ(wt.archive->digest_name(), "SHA-256");
  EXPECT_EQ(wt.archive->digest(),
            "242ba0f20b329cfdf1ccc61e9e9e5b59becf189db7f7a81cd2a0e2fc31539590");
  EXPECT_EQ(wt.archive->urls.size(), 2u);
  const char* members[] = {"wikitext-103/wiki.train.tokens", "wikitext-103/wiki.valid.tokens",
                           "wikitext-103/wiki.test.tokens"};
  const char* sha1[] = {"b7497e2dfe77e72cfef5e3dbc61b7b53712ac211",
                        "c326ac59dc587676d58c422eb8a03e119582f92b",
                        "8a5befc548865cec54ed4273cf87dbbad60d1e47"};
  ASSERT_EQ(wt.files.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(wt.files[i].member, members[i]);
    EXPECT_EQ(wt.files[i].digest_name(), "SHA-1");  // GluonNLP's: no SHA-256 is published
    EXPECT_EQ(wt.files[i].digest(), sha1[i]);
    EXPECT_TRUE(wt.files[i].urls.empty());
  }
  // The source of those SHA-1s publishes WikiText-2's too: they are the wikitext2 files' here.
  const std::string root = test::real_data_dir();
  if (!root.empty() && std::filesystem::exists(root + "/wikitext-2/valid.txt")) {
    EXPECT_EQ(sha1_file(root + "/wikitext-2/train.txt"),
              "863f29c46ef9d167fff4940ec821195882fe29d1");
    EXPECT_EQ(sha1_file(root + "/wikitext-2/valid.txt"),
              "0418625c8b4da6e4b5c7a0b9e78d4ae8f7ee5422");
    EXPECT_EQ(sha1_file(root + "/wikitext-2/test.txt"), "c7b8ce0aa086fb34dab808c5c49224211eb2b172");
  }
}

TEST(Registry, AnArchiveCorpusIsCheckedStrictly) {
  const std::string sha1 = R"("sha1": "b7497e2dfe77e72cfef5e3dbc61b7b53712ac211")";
  auto registry = [&](const std::string& archive, const std::string& train) {
    const std::string file = "{" + sha1 + R"(, "member": "w/v.tokens"})";
    return R"({"c": {"folder": "c", )" + archive + R"("files": {"train.txt": )" + train +
           R"(, "valid.txt": )" + file + R"(, "test.txt": )" + file + "}}}";
  };
  const std::string archive =
      R"("archive": {"name": "c.zip", "md5": "9ddaacaf6af0710eda8c456decff7832", "urls": )"
      R"(["https://example.org/c.zip"]}, )";
  const std::string member = "{" + sha1 + R"(, "member": "w/t.tokens"})";
  const auto ok = parse_registry(registry(archive, member));
  ASSERT_TRUE(ok.at(0).archive.has_value());
  EXPECT_EQ(ok.at(0).files.at(0).member, "w/t.tokens");
  EXPECT_THROW_MESSAGE(parse_registry(registry("", member)), std::runtime_error,
                       "a member, but the corpus names no archive");
  EXPECT_THROW_MESSAGE(
      parse_registry(registry(archive, "{" + sha1 + R"(, "urls": ["https://example.org/t"]})")),
      std::runtime_error, "names its member (and no urls)");
  EXPECT_THROW_MESSAGE(
      parse_registry(registry(archive, "{" + sha1 + R"(, "member": "../t.tokens"})")),
      std::runtime_error, "member '../t.tokens' is not a relative path inside the archive");
  EXPECT_THROW_MESSAGE(
      parse_registry(registry(archive, "{" + sha1 + R"(, "member": "/etc/passwd"})")),
      std::runtime_error, "is not a relative path");
  EXPECT_THROW_MESSAGE(parse_registry(registry(
                           R"("archive": {"name": "../c.zip", "md5": )"
                           R"("9ddaacaf6af0710eda8c456decff7832", "urls": ["https://e.org/c"]}, )",
                           member)),
                       std::runtime_error, "archive name '../c.zip' is not one plain name");
  EXPECT_THROW_MESSAGE(
      parse_registry(registry(R"("archive": {"name": "c.zip", "md5": )"
                              R"("9ddaacaf6af0710eda8c456decff7832", "urls": []}, )",
                              member)),
      std::runtime_error, "archive: no urls");
  EXPECT_THROW_MESSAGE(
      parse_registry(
          registry(R"("archive": {"name": "c.zip", "urls": ["https://e.org/c"]}, )", member)),
      std::runtime_error, "corpus 'c' archive: give one digest");
}

TEST(Registry, AnArchiveCorpusIsDownloadedExtractedVerifiedAndCached) {
  // tests/data/zip/corpus.zip (Python's zipfile) holds mini/wiki.{train,valid,test}.tokens.
  const std::string zip = std::string(LMQUANT_TEST_DATA_DIR) + "/zip/corpus.zip";
  test::TempDir scratch, cache, data;
  CorpusSpec spec{"fixture", "zip-corpus", "test", {}};
  spec.archive = CorpusFileSpec{"corpus.zip", sha256_file(zip), 0, {"file://" + zip}, ""};
  for (const std::string split : {"train", "valid", "test"}) {
    ZipArchive(zip).extract("mini/wiki." + split + ".tokens", scratch.file(split));
    CorpusFileSpec f{split + ".txt", "", 0, {}, ""};
    f.sha1 = sha1_file(scratch.file(split));
    f.member = "mini/wiki." + split + ".tokens";
    spec.files.push_back(f);
  }
  const WithoutDataEnv no_data;

  const CorpusLocation loc = locate_corpus(spec, {}, cache.path());
  EXPECT_EQ(loc.source, "download");
  EXPECT_TRUE(loc.verified);
  EXPECT_EQ(read_file(cache.path() + "/zip-corpus/train.txt"), read_file(scratch.file("train")));
  // Only the corpus folder is left: no staging folder, no archive.
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(cache.path()))
    left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"zip-corpus"});
  EXPECT_EQ(locate_corpus(spec, {}, cache.path()).source, "cache");
  const Corpus c = load_word_corpus(loc);
  EXPECT_EQ(c.valid.numel(), 4);  // "the cat sat <eos>"

  // Offline, with a copy of the archive in the data folder: extracted from it.
  std::filesystem::copy_file(zip, data.file("corpus.zip"));
  CorpusOptions offline;
  offline.data_dir = data.path();
  offline.allow_download = false;
  test::TempDir cache2;
  EXPECT_EQ(locate_corpus(spec, offline, cache2.path()).source, "archive");
  EXPECT_TRUE(std::filesystem::exists(data.file("corpus.zip")));  // a local copy is kept

  // An archive that is not the registered one is refused, with both digests, and nothing kept.
  CorpusSpec wrong = spec;
  wrong.archive->sha256 = std::string(64, 'a');
  test::TempDir cache3;
  EXPECT_THROW_MESSAGE(locate_corpus(wrong, offline, cache3.path()), std::runtime_error,
                       "has SHA-256 " + sha256_file(zip) + ", expected " + std::string(64, 'a'));
  EXPECT_THROW_MESSAGE(locate_corpus(wrong, {}, cache3.path()), std::runtime_error,
                       "served a file with SHA-256 " + sha256_file(zip));
  EXPECT_FALSE(std::filesystem::exists(cache3.path() + "/zip-corpus/train.txt"));
  // A member that is not the registered file: the archive, member and both digests named.
  CorpusSpec member = spec;
  member.files[1].sha1 = std::string(40, 'b');
  test::TempDir cache4;
  EXPECT_THROW_MESSAGE(locate_corpus(member, offline, cache4.path()), std::runtime_error,
                       "corpus.zip: member mini/wiki.valid.tokens has SHA-1 " + spec.files[1].sha1 +
                           ", expected " + std::string(40, 'b'));
  // Without any archive: the message says where to put one.
  CorpusSpec absent = spec;
  absent.archive->urls = {"file:///nonexistent/lmquant/corpus.zip"};
  test::TempDir cache5;
  EXPECT_THROW_MESSAGE(
      locate_corpus(absent, {}, cache5.path()), std::runtime_error,
      "/{train,valid,test}.txt, or the archive corpus.zip itself, in one of: --data-dir DIR");
  EXPECT_FALSE(std::filesystem::exists(cache5.path() + "/zip-corpus"));
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
