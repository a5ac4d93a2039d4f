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

// printf into a string, any length.
template <class... Args>
std::string strf(const char* format, Args... args) {
  const int n = std::snprintf(nullptr, 0, format, args...);
  std::string s(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::snprintf(s.data(), s.size() + 1, format, args...);
  return s;
}

// `s` padded with spaces to `width` characters, counting UTF-8 characters, not bytes (printf's
// %-Ns counts "→" as three).
inline std::string padded(const std::string& s, size_t width) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  return s + std::string(chars < width ? width - chars : 0, ' ');
}

}  // namespace lmquant
