#include "util/fast_math.h"

#include <cstdlib>
#include <stdexcept>

namespace lmquant {

std::string to_string(VectorIsa isa) {
  switch (isa) {
    case VectorIsa::kAvx512f:
      return "avx512f";
    case VectorIsa::kAvx2:
      return "avx2";
    default:
      return "baseline";
  }
}

VectorIsa parse_vector_isa(const std::string& s) {
  for (VectorIsa i : {VectorIsa::kBaseline, VectorIsa::kAvx2, VectorIsa::kAvx512f})
    if (to_string(i) == s) return i;
  throw std::invalid_argument("unknown vector ISA '" + s +
                              "' (LMQUANT_VECTOR_ISA); valid values: baseline, avx2, avx512f");
}

VectorIsa vector_isa() {
  static const VectorIsa isa = [] {
    __builtin_cpu_init();
    VectorIsa best = VectorIsa::kBaseline;
    if (__builtin_cpu_supports("avx2")) best = VectorIsa::kAvx2;
    if (__builtin_cpu_supports("avx512f")) best = VectorIsa::kAvx512f;
    if (const char* cap = std::getenv("LMQUANT_VECTOR_ISA"); cap && *cap) {
      const VectorIsa c = parse_vector_isa(cap);
      if (static_cast<int>(c) < static_cast<int>(best)) best = c;
    }
    return best;
  }();
  return isa;
}

}  // namespace lmquant
