// Batching (corpus/batching.h): the pytorch/examples layout.
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

