// The vocabulary (corpus/vocab.h): first-occurrence ids, stable hash.
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


TEST(VocabFile, OneTokenPerLineInOrder) {
  TempDir tmp;
  write_text(tmp.file("v.txt"), "<unk>\r\nthe\n<eos>\rcat\n");  // any line ending
  const Vocab v = read_vocab_file(tmp.file("v.txt"));
  EXPECT_EQ(v.size(), 4);
  EXPECT_EQ(v.find("the"), 1);
  EXPECT_EQ(v.find("<eos>"), 2);
  EXPECT_EQ(v.find("cat"), 3);
  write_text(tmp.file("dup.txt"), "a\nb\na\n");
  EXPECT_THROW_MESSAGE(read_vocab_file(tmp.file("dup.txt")), std::runtime_error,
                       "token 'a' on line 3 is also on line 1");
  write_text(tmp.file("gap.txt"), "a\n\nb\n");
  EXPECT_THROW_MESSAGE(read_vocab_file(tmp.file("gap.txt")), std::runtime_error,
                       "line 2 is empty");
  write_text(tmp.file("none.txt"), "");
  EXPECT_THROW_MESSAGE(read_vocab_file(tmp.file("none.txt")), std::runtime_error, "is empty");
}

TEST(VocabFile, TheCorpusTakesItsIdsAndMapsOtherWordsToUnk) {
  TempDir tmp;
  const std::string dir = tmp.file("c");
  fs::create_directories(dir);
  write_text(dir + "/train.txt", "the cat sat\n");
  write_text(dir + "/valid.txt", "the dog\n");
  write_text(dir + "/test.txt", "a cat\n");
  CorpusLocation loc;
  loc.name = dir;
  loc.dir = dir;
  // Ids from the file, not first occurrence: "cat" is 0 here, where the corpus would say 1.
  write_text(tmp.file("v.txt"), "cat\n<eos>\nthe\nsat\n<unk>\n");
  const Corpus c = load_word_corpus(loc, tmp.file("v.txt"));
  EXPECT_TRUE(torch::equal(c.train, torch::tensor({2, 0, 3, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(c.valid, torch::tensor({2, 4, 1}, torch::kInt64)));  // dog: <unk>
  EXPECT_TRUE(torch::equal(c.test, torch::tensor({4, 0, 1}, torch::kInt64)));   // a: <unk>
  EXPECT_EQ(c.train_oov, 0);
  EXPECT_EQ(c.valid_oov, 1);
  EXPECT_EQ(c.test_oov, 1);
  EXPECT_EQ(c.vocab_path, tmp.file("v.txt"));
  // fastai's unknown-word token.
  write_text(tmp.file("fa.txt"), "xxunk\n<eos>\nthe\ncat\nsat\n");
  EXPECT_TRUE(torch::equal(load_word_corpus(loc, tmp.file("fa.txt")).valid,
                           torch::tensor({2, 0, 1}, torch::kInt64)));
  // Without <eos>, or without an unknown-word token when a word needs one: named.
  write_text(tmp.file("noeos.txt"), "cat\nthe\nsat\n<unk>\n");
  EXPECT_THROW_MESSAGE(load_word_corpus(loc, tmp.file("noeos.txt")), std::runtime_error,
                       "has no <eos>");
  write_text(tmp.file("nounk.txt"), "cat\n<eos>\nthe\nsat\n");
  EXPECT_THROW_MESSAGE(load_word_corpus(loc, tmp.file("nounk.txt")), std::runtime_error,
                       "no <unk> (or xxunk) for 'dog'");
}
