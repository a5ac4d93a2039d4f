// Corpus layer: registry, lookup/verify/download, word tokenizer, vocabulary, batching.
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

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  for_each_word(text, "t", [&](std::string_view w) { out.emplace_back(w); });
  return out;
}

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

TEST(WordTokenizer, SplitsLikePythonAndAddsEosPerLine) {
  // A literal "<eos>" is a word like any other (Python's split keeps it); found by fuzzing.
  EXPECT_EQ(split_words("a <eos>\fb"), (std::vector<std::string>{"a", "<eos>", "b"}));
  EXPECT_EQ(words_of(" a b  c \n"), (std::vector<std::string>{"a", "b", "c", "<eos>"}));
  // Empty lines still give <eos>; a last line without newline counts; \r\n and \r end lines.
  EXPECT_EQ(words_of("a\n\nb\r\nc\rd"),
            (std::vector<std::string>{"a", "<eos>", "<eos>", "b", "<eos>", "c", "<eos>", "d",
                                      "<eos>"}));
  EXPECT_TRUE(words_of("").empty());
  // Python's str.split() whitespace beyond ASCII: U+00A0 and U+3000 separate words, U+00E9 not.
  EXPECT_EQ(words_of("x\xc2\xa0y caf\xc3\xa9\xe3\x80\x80z\t\x1fw"),
            (std::vector<std::string>{"x", "y", "caf\xc3\xa9", "z", "w", "<eos>"}));
}

TEST(WordTokenizer, RejectsInvalidUtf8WithLineAndOffset) {
  EXPECT_THROW_MESSAGE(words_of("ok\nbad \xff here\n"), std::runtime_error, "line 2, byte offset 7");
  EXPECT_THROW_MESSAGE(words_of("\xc3"), std::runtime_error, "not valid UTF-8");   // truncated
  EXPECT_THROW_MESSAGE(words_of("\xc0\xaf"), std::runtime_error, "not valid UTF-8");  // overlong
  EXPECT_THROW_MESSAGE(words_of("\xed\xa0\x80"), std::runtime_error, "UTF-8");  // surrogate
}

TEST(Vocab, FirstOccurrenceOrderAndStableHash) {
  Vocab v;
  auto ids = tokenize_text("b a b\nc a\n", v, "t");
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 1, 0, 2, 3, 1, 2}));
  EXPECT_EQ(v.word(2), "<eos>");
  EXPECT_EQ(v.find("zzz"), -1);
  Vocab copy = v;
  EXPECT_EQ(copy.hash(), v.hash());
  EXPECT_EQ(copy.find("c"), 3);
  copy.add("d");
  EXPECT_NE(copy.hash(), v.hash());
}

TEST(Batching, MatchesReferenceLayout) {
  auto stream = torch::arange(11, torch::kInt64);
  auto b = batchify(stream, 2);  // 11 -> 10 tokens -> 5 x 2
  EXPECT_TRUE(torch::equal(b, torch::tensor({0, 5, 1, 6, 2, 7, 3, 8, 4, 9}).view({5, 2})));
  auto c = get_batch(b, 0, 2);
  EXPECT_TRUE(torch::equal(c.data, torch::tensor({0, 5, 1, 6}).view({2, 2})));
  EXPECT_TRUE(torch::equal(c.targets, torch::tensor({1, 6, 2, 7})));
  auto last = get_batch(b, 4 - 1, 35);  // clipped to rows - 1 - i = 1
  EXPECT_EQ(last.data.size(0), 1);
  EXPECT_TRUE(torch::equal(last.targets, torch::tensor({4, 9})));
  EXPECT_THROW(batchify(torch::arange(3, torch::kInt64), 2), std::invalid_argument);
}

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
