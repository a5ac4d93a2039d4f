// SHA-256 of files and byte strings (OpenSSL EVP), as lowercase hex.
#pragma once
#include <string>
#include <string_view>

namespace lmquant {

// Hex SHA-256 of a file's bytes. Throws std::runtime_error naming the file if it cannot be read.
std::string sha256_file(const std::string& path);
// Hex SHA-256 of a byte string.
std::string sha256_bytes(std::string_view bytes);
// The 32 raw bytes of a byte string's SHA-256 (what a checkpoint stores after its header).
std::string sha256_raw(std::string_view bytes);

}  // namespace lmquant
