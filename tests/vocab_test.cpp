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

