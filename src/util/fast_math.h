// Branch-free float exp and sigmoid that GCC vectorises inside target_clones loops (the build
// targets baseline x86-64; LMQ_CLONES compiles a loop for AVX-512, AVX2 and the baseline and
// picks one at load time).
//
// fast_exp: Cephes' expf. x = n·ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n
// through the exponent bits; x clamped to [-87, 88] (e^-87 ≈ 1.6e-38, e^88 ≈ 1.7e38), max
// relative error ~2e-7. Example: x = 1: n = 1, r = 1 − ln2 = 0.30685, e^r = 1.35914,
// 2 · 1.35914 = 2.71828.
// fast_sigmoid(x) = 1 / (1 + e^−x);  tanh(x) = 2·σ(2x) − 1 (absolute error ~2e-7).
#pragma once
#include <cstdint>
#include <cstring>

#define LMQ_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

namespace lmquant {

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
