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

