// util/fast_math.h: the header's fast_exp example and its error bound, and LMQ_DISPATCH: each of
// the three compiled copies of a loop gives the reference's result, the dispatched one is the copy
// vector_isa() names, and LMQUANT_VECTOR_ISA's values parse (tools/isa_check.sh runs this on an
// AVX2-only and a baseline CPU, and with the cap).
#include "util/fast_math.h"

#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "test_utils.h"

using namespace lmquant;

namespace {

// Σ_j e^(x_j), 8 partial sums: a loop of the shape the engine's are.
LMQ_INLINE float exp_total_body(const float* x, int64_t n) {
  float acc[8] = {0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int64_t u = 0; u < 8; ++u) acc[u] += fast_exp(x[j + u]);
  float s = 0;
  for (; j < n; ++j) s += fast_exp(x[j]);
  for (float a : acc) s += a;
  return s;
}
LMQ_DISPATCH(float, exp_total, (const float* x, int64_t n), (x, n), exp_total_body)

}  // namespace

TEST(FastMath, HeaderExampleAndErrorBound) {
  EXPECT_NEAR(fast_exp(1.0f), 2.71828f, 1e-5f);
  float worst = 0;
  for (float x = -80.0f; x <= 80.0f; x += 0.173f)
    worst = std::max(worst, std::fabs(fast_exp(x) / std::exp(x) - 1.0f));
  EXPECT_LT(worst, 3e-7f);
  // The clamps: no inf, no denormal garbage.
  EXPECT_FLOAT_EQ(fast_exp(200.0f), fast_exp(88.0f));
  EXPECT_FLOAT_EQ(fast_exp(-200.0f), fast_exp(-87.0f));
  EXPECT_NEAR(fast_tanh(0.5f), std::tanh(0.5f), 3e-7f);
  EXPECT_NEAR(fast_sigmoid(-2.0f), 1.0f / (1.0f + std::exp(2.0f)), 3e-7f);
}

TEST(FastMath, EveryCopyOfADispatchedLoopAgreesAndTheChosenOneRuns) {
  std::mt19937 g(3);
  std::uniform_real_distribution<float> d(-10.0f, 3.0f);
  std::vector<float> x(1003);
  for (auto& v : x) v = d(g);
  double ref = 0;
  for (float v : x) ref += std::exp(static_cast<double>(v));
  const int64_t n = static_cast<int64_t>(x.size());
  const float base = exp_total_baseline(x.data(), n);
  EXPECT_NEAR(base, ref, 1e-6 * ref);
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) EXPECT_NEAR(exp_total_avx2(x.data(), n), ref, 1e-6 * ref);
  if (__builtin_cpu_supports("avx512f"))
    EXPECT_NEAR(exp_total_avx512f(x.data(), n), ref, 1e-6 * ref);
  // The dispatched call is bit for bit the copy vector_isa() names.
  auto* chosen = pick_vector_isa(exp_total_avx512f, exp_total_avx2, exp_total_baseline);
  EXPECT_EQ(exp_total(x.data(), n), chosen(x.data(), n)) << to_string(vector_isa());
  // vector_isa() never exceeds the CPU, and follows the cap when one is set.
  if (vector_isa() == VectorIsa::kAvx512f) EXPECT_TRUE(__builtin_cpu_supports("avx512f"));
  if (vector_isa() == VectorIsa::kAvx2) EXPECT_TRUE(__builtin_cpu_supports("avx2"));
  if (const char* cap = std::getenv("LMQUANT_VECTOR_ISA"); cap && *cap)
    EXPECT_LE(static_cast<int>(vector_isa()), static_cast<int>(parse_vector_isa(cap)));
}

TEST(FastMath, VectorIsaNames) {
  for (VectorIsa i : {VectorIsa::kBaseline, VectorIsa::kAvx2, VectorIsa::kAvx512f})
    EXPECT_EQ(parse_vector_isa(to_string(i)), i);
  EXPECT_THROW_MESSAGE(parse_vector_isa("sse4"), std::invalid_argument,
                       "valid values: baseline, avx2, avx512f");
}
