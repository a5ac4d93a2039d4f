#include "util/json_check.h"

#include <cmath>
#include <stdexcept>

namespace lmquant {

void check_json_numbers(const nlohmann::json& j, const std::string& what) {
  constexpr double kLimit = 4611686018427387904.0;  // 2^62
  switch (j.type()) {
    case nlohmann::json::value_t::object:
    case nlohmann::json::value_t::array:
      for (const auto& v : j) check_json_numbers(v, what);
      return;
    case nlohmann::json::value_t::number_float: {
      const double x = j.get<double>();
      if (!std::isfinite(x) || std::fabs(x) > kLimit)
        throw std::runtime_error(what + ": a number out of range (" + j.dump() + ")");
      return;
    }
    default:
      return;
  }
}

uint64_t json_count(const nlohmann::json& j, const std::string& key) {
  const auto it = j.find(key);
  if (it == j.end() || !(it->is_number_unsigned() || (it->is_number_integer() && *it >= 0)))
    throw std::runtime_error("field '" + key + "' is not a non-negative integer");
  return it->get<uint64_t>();
}

}  // namespace lmquant
