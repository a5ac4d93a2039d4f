// SHA-256 of files and byte strings (OpenSSL EVP), as lowercase hex.
#pragma once
#include <string>
#include <string_view>

namespace lmquant {

// Hex SHA-256 of a file's bytes. Throws std::runtime_error naming the file if it cannot be read.
std::string sha256_file(const std::string& path);
// Hex SHA-256 of a byte string.
std::string sha256_bytes(std::string_view bytes);

}  // namespace lmquant
