// SHA-256 of files and byte strings (OpenSSL EVP), as lowercase hex; and a file's SHA-1 or MD5,
// only for checking files whose publishers give nothing else (corpus/registry.h).
#pragma once
#include <string>
#include <string_view>

namespace lmquant {

// Hex SHA-256 of a file's bytes. Throws std::runtime_error naming the file if it cannot be read.
std::string sha256_file(const std::string& path);
// Hex MD5 of a file's bytes (RFC 1321; MD5("abc") = 900150983cd24fb0d6963f7d28e17f72).
std::string md5_file(const std::string& path);
// Hex SHA-1 of a file's bytes (FIPS 180-4; SHA-1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d).
std::string sha1_file(const std::string& path);
// Hex SHA-256 of a byte string.
std::string sha256_bytes(std::string_view bytes);
// The 32 raw bytes of a byte string's SHA-256 (what a checkpoint stores after its header).
std::string sha256_raw(std::string_view bytes);

}  // namespace lmquant
