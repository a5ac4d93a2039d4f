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

