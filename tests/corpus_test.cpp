// The tokenized corpus (corpus/corpus.h): fixture folders, clear errors, real WikiText-2 counts.
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


TEST(Corpus, TinyFixtureLoadsAsDirectory) {
  auto loc = locate_corpus(lmquant::test::tiny_corpus_dir(), {});
  EXPECT_EQ(loc.source, "directory");
  Corpus c = load_word_corpus(loc);
  EXPECT_GT(c.vocab.size(), 50);
  EXPECT_EQ(c.vocab.word(0), "=");
  // 11 lines in train.txt, one <eos> each.
  EXPECT_EQ((c.train == c.vocab.find("<eos>")).sum().item<int64_t>(), 11);
}

TEST(Corpus, BadDirectoriesAndFilesGiveClearErrors) {
  TempDir tmp;
  EXPECT_THROW_MESSAGE(locate_corpus(tmp.path() + "/nope", {}), std::runtime_error,
                       "neither a registered corpus");
  EXPECT_THROW_MESSAGE(locate_corpus(tmp.path(), {}), std::runtime_error, "missing");
  write_text(tmp.file("train.txt"), "a b\n");
  write_text(tmp.file("valid.txt"), "");
  write_text(tmp.file("test.txt"), "a\n");
  EXPECT_THROW_MESSAGE(load_word_corpus(locate_corpus(tmp.path(), {})), std::runtime_error,
                       "valid.txt is empty");
  write_text(tmp.file("valid.txt"), "caf\xe9\n");  // Latin-1, not UTF-8
  EXPECT_THROW_MESSAGE(load_word_corpus(locate_corpus(tmp.path(), {})), std::runtime_error,
                       "valid.txt: not valid UTF-8");
  EXPECT_THROW_MESSAGE(corpus_spec("wikitext3"), std::invalid_argument, "wikitext2");
}

TEST(Corpus, UnreadableDirectoryGivesClearError) {
  if (::geteuid() == 0) {
    // root reads everything; a directory given as a file exercises the same error path.
    TempDir tmp;
    fs::create_directories(tmp.file("train.txt"));
    write_text(tmp.file("valid.txt"), "a\n");
    write_text(tmp.file("test.txt"), "a\n");
    EXPECT_THROW_MESSAGE(locate_corpus(tmp.path(), {}), std::runtime_error, "train.txt");
    return;
  }
  TempDir tmp;
  for (auto f : {"train.txt", "valid.txt", "test.txt"}) write_text(tmp.file(f), "a\n");
  ::chmod(tmp.file("train.txt").c_str(), 0);
  EXPECT_THROW_MESSAGE(load_word_corpus(locate_corpus(tmp.path(), {})), std::runtime_error,
                       "cannot read");
}

TEST(RealData, WikiText2CountsAndChecksums) {
  LMQUANT_REQUIRE_REAL_DATA(dir);
  CorpusOptions o;
  o.data_dir = dir;
  o.allow_download = false;
  auto loc = locate_corpus("wikitext2", o);
  EXPECT_TRUE(loc.verified);
  for (const auto& f : corpus_spec("wikitext2").files)
    EXPECT_EQ(sha256_file(loc.dir + "/" + f.name), f.sha256) << f.name;
  Corpus c = load_word_corpus(loc);
  EXPECT_EQ(c.vocab.size(), 33278);
  EXPECT_EQ(c.train.numel(), 2088628);
  EXPECT_EQ(c.valid.numel(), 217646);
  EXPECT_EQ(c.test.numel(), 245569);
  EXPECT_EQ(c.vocab.word(0), "<eos>");  // train.txt starts with an empty line
}
