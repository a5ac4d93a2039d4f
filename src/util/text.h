// Small text helpers for tables and logs.
#pragma once
#include <cstdio>
#include <string>

namespace lmquant {

// One number through a printf format ("%.5f", "%+g", ...).
inline std::string fmt(const char* format, double v) {
  char b[64];
  std::snprintf(b, sizeof b, format, v);
  return b;
}

// `s` padded with spaces to `width` characters, counting UTF-8 characters, not bytes (printf's
// %-Ns counts "→" as three).
inline std::string padded(const std::string& s, size_t width) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  return s + std::string(chars < width ? width - chars : 0, ' ');
}

}  // namespace lmquant
