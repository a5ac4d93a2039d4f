// libFuzzer target: the corpus reader and word tokenizer (tools/fuzz.sh builds and runs it).
// Invariants checked: no crash or sanitizer report; invalid UTF-8 is a std::runtime_error; on
// valid text the <eos> count is the line count of for_each_line plus the literal "<eos>" words
// (as in pytorch/examples, a literal "<eos>" in the text is that same token).
#include <cstdint>
#include <stdexcept>
#include <string>

#include "corpus/vocab.h"
#include "corpus/word_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  lmquant::Vocab vocab;
  std::vector<int64_t> ids;
  try {
    ids = lmquant::tokenize_text(text, vocab, "fuzz");
  } catch (const std::runtime_error&) {
    return 0;  // invalid UTF-8: refused, as it should be
  }
  int64_t eos = 0, lines = 0;
  const int64_t eos_id = vocab.find(lmquant::kEos);
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab.size()) __builtin_trap();
    eos += id == eos_id;
  }
  int64_t literal = 0;
  lmquant::for_each_line(text, [&](std::string_view line) {
    ++lines;
    for (const auto& w : lmquant::split_words(line)) literal += w == lmquant::kEos;
  });
  if (eos != lines + literal) __builtin_trap();
  (void)lmquant::split_words(text);
  return 0;
}
