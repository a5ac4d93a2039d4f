// Branch-free float exp and sigmoid that GCC vectorises, and the run-time dispatch of the loops
// that use them (the build targets baseline x86-64).
//
// LMQ_DISPATCH(ret, name, params, args, body) defines `ret name params` from an always_inline
// `body`: one copy compiled for AVX-512F, one for AVX2 and one for the baseline (the body is
// inlined into each, so each is vectorised for its ISA), the first call picking one by
// vector_isa(): the best this CPU runs, capped by LMQUANT_VECTOR_ISA=avx512f|avx2|baseline — so
// a newer CPU can run (and measure) the loops an AVX2-only or a baseline CPU would. (GCC's
// target_clones, used before, picks by CPUID alone, with no cap.)
//
// fast_exp: Cephes' expf. x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n
// through the exponent bits; x clamped to [-87, 88] (e^-87 ≈ 1.6e-38, e^88 ≈ 1.7e38), max
// relative error ~2e-7. Example: x = 1: n = 1, r = 1 − ln2 = 0.30685, e^r = 1.35914,
// 2 · 1.35914 = 2.71828.
// fast_sigmoid(x) = 1 / (1 + e^−x);  tanh(x) = 2·σ(2x) − 1 (absolute error ~2e-7).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#define LMQ_INLINE __attribute__((always_inline)) inline
#define LMQ_DISPATCH(ret, name, params, args, body)                                  \
  __attribute__((target("avx512f"))) ret name##_avx512f params { return body args; } \
  __attribute__((target("avx2"))) ret name##_avx2 params { return body args; }       \
  ret name##_baseline params { return body args; }                                   \
  ret name params {                                                                  \
    static const auto chosen =                                                       \
        ::lmquant::pick_vector_isa(name##_avx512f, name##_avx2, name##_baseline);    \
    return chosen args;                                                              \
  }

namespace lmquant {

enum class VectorIsa { kBaseline, kAvx2, kAvx512f };
std::string to_string(VectorIsa isa);
// "baseline", "avx2" or "avx512f"; throws std::invalid_argument listing them.
VectorIsa parse_vector_isa(const std::string& s);
// What the LMQ_DISPATCH loops run: the best of the three this CPU has, capped (never raised) by
// LMQUANT_VECTOR_ISA. Read once.
VectorIsa vector_isa();

template <class F>
F pick_vector_isa(F avx512f, F avx2, F baseline) {
  switch (vector_isa()) {
    case VectorIsa::kAvx512f:
      return avx512f;
    case VectorIsa::kAvx2:
      return avx2;
    default:
      return baseline;
  }
}

__attribute__((always_inline)) inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float t = x * 1.44269504088896341f;
  const float nf = (t + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (x - nf * 0.693359375f) + nf * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(nf) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

__attribute__((always_inline)) inline float fast_sigmoid(float x) {
  return 1.0f / (1.0f + fast_exp(-x));
}
__attribute__((always_inline)) inline float fast_tanh(float x) {
  return 2.0f * fast_sigmoid(2.0f * x) - 1.0f;
}

}  // namespace lmquant
