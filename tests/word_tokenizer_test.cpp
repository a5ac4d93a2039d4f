// The word tokenizer (corpus/word_tokenizer.h): Python str.split() words, <eos> per line, UTF-8 checks.
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

