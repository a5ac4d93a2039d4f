// Untrusted JSON, checked before its numbers are read: nlohmann converts a floating-point value to
// an integer type by a cast, undefined behaviour when the value is outside the type's range (the
// record and registry fuzz targets found it: a "tokens" of -8.9e52). Every reader of a file or a
// line calls this after parsing and before any get<int>().
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace lmquant {

// Throws std::runtime_error naming `what` when any number in `j` (at any depth) is a float
// outside [-2^62, 2^62] (within it, a cast to int64 is defined; an integer field holding a
// float is then at worst truncated, and a wrong value is caught by the reader's own checks).
void check_json_numbers(const nlohmann::json& j, const std::string& what);

// A non-negative integer field read strictly: a JSON integer, not a float; else
// std::runtime_error naming `key`.
uint64_t json_count(const nlohmann::json& j, const std::string& key);

}  // namespace lmquant
