#include "corpus/word_tokenizer.h"

#include <stdexcept>

#include "util/atomic_file.h"

namespace lmquant {
namespace detail {

int decode_utf8(std::string_view s, size_t i, uint32_t& cp) {
  const size_t n = s.size();
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  int len;
  uint32_t min;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + static_cast<size_t>(len) > n) return 0;
  for (int k = 1; k < len; ++k) {
    const unsigned char cc = b(i + static_cast<size_t>(k));
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool is_python_space(uint32_t cp) {
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

}  // namespace detail

std::vector<int64_t> tokenize_text(std::string_view text, Vocab& vocab, const std::string& where) {
  std::vector<int64_t> ids;
  ids.reserve(text.size() / 5);
  for_each_word(text, where, [&](std::string_view w) { ids.push_back(vocab.add(w)); });
  return ids;
}

std::vector<int64_t> tokenize_file(const std::string& path, Vocab& vocab) {
  return tokenize_text(read_file(path), vocab, path);
}

std::vector<std::string> split_words(std::string_view sentence) {
  std::vector<std::string> out;
  for_each_word(sentence, "input", [&](std::string_view w) {
    if (!is_line_end(w)) out.emplace_back(w);
  });
  return out;
}

}  // namespace lmquant
