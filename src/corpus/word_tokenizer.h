// The word tokenizer of pytorch/examples word_language_model (data.py):
//   for line in open(path, encoding="utf8"):  words = line.split() + ['<eos>']
// i.e. lines end at "\n", "\r\n" or "\r" (Python's universal newlines), words are separated by
// runs of Python's str.split() whitespace (ASCII \t\n\v\f\r\x1c-\x1f and space, plus U+0085,
// U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000), and each line, empty
// or not, adds one "<eos>". The text must be valid UTF-8 (Python would refuse it otherwise).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "corpus/vocab.h"

namespace lmquant {

// One object (an inline array, not a pointer to a literal): is_line_end compares addresses.
inline constexpr char kEos[] = "<eos>";

// Calls on_word(word) for each word and on_word("<eos>") at the end of each line. The end-of-line
// view points at kEos itself, so a literal "<eos>" word in the text (the same token, as in
// pytorch/examples) can be told apart by its address (is_line_end).
// Throws std::runtime_error naming `where` (file name), the line and byte offset on invalid UTF-8.
template <class F>
void for_each_word(std::string_view text, const std::string& where, F&& on_word);

// Calls on_line(line) for each line (without its line break), with for_each_word's line rules:
// "\n", "\r\n" and "\r" end a line, and a last line without a line break counts if not empty.
template <class F>
void for_each_line(std::string_view text, F&& on_line) {
  size_t begin = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n' && text[i] != '\r') continue;
    on_line(text.substr(begin, i - begin));
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    begin = i + 1;
  }
  if (begin < text.size()) on_line(text.substr(begin));
}

// True for the view for_each_word passes at a line end (not for a literal "<eos>" in the text).
inline bool is_line_end(std::string_view w) { return w.data() == kEos; }

// Tokenizes text, adding new words to `vocab` (grow = true) or mapping unknown words to -1.
std::vector<int64_t> tokenize_text(std::string_view text, Vocab& vocab, const std::string& where);

// Reads and tokenizes a file; errors name the file.
std::vector<int64_t> tokenize_file(const std::string& path, Vocab& vocab);

// Splits one sentence into words (no <eos>) without touching a vocabulary.
std::vector<std::string> split_words(std::string_view sentence);

namespace detail {
// Decodes the UTF-8 sequence at text[i]; returns its length and sets cp, or 0 if invalid.
int decode_utf8(std::string_view text, size_t i, uint32_t& cp);
bool is_python_space(uint32_t cp);
}  // namespace detail

template <class F>
void for_each_word(std::string_view text, const std::string& where, F&& on_word) {
  static const std::string_view eos(kEos, 5);
  size_t i = 0, word_begin = std::string_view::npos;
  int64_t line = 1;
  bool line_open = false;  // the current line has content (or began)
  const size_t n = text.size();
  auto flush = [&](size_t end) {
    if (word_begin != std::string_view::npos) {
      on_word(text.substr(word_begin, end - word_begin));
      word_begin = std::string_view::npos;
    }
  };
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\n' || c == '\r') {
        flush(i);
        on_word(eos);
        line_open = false;
        ++line;
        i += (c == '\r' && i + 1 < n && text[i + 1] == '\n') ? 2 : 1;
        continue;
      }
      line_open = true;
      const bool space = c == ' ' || c == '\t' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1f);
      if (space) {
        flush(i);
      } else if (word_begin == std::string_view::npos) {
        word_begin = i;
      }
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const int len = detail::decode_utf8(text, i, cp);
    if (len == 0)
      throw std::runtime_error(where + ": not valid UTF-8 at line " + std::to_string(line) +
                               ", byte offset " + std::to_string(i) +
                               " (lmquant reads UTF-8 text; convert the file, e.g. with iconv)");
    line_open = true;
    if (detail::is_python_space(cp)) {
      flush(i);
    } else if (word_begin == std::string_view::npos) {
      word_begin = i;
    }
    i += static_cast<size_t>(len);
  }
  flush(n);
  if (line_open) on_word(eos);  // a last line without its newline still counts
}

}  // namespace lmquant
