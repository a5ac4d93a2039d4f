// Clip rules: parsing, hand-computed thresholds, and behaviour on data with a known answer.
#include "quant/clip.h"

#include "test_utils.h"

using namespace lmquant;

namespace {
float alpha(const std::string& rule, const std::vector<float>& w, int bits) {
  return choose_alpha(ClipRule::parse(rule), w.data(), static_cast<int64_t>(w.size()), bits);
}
std::vector<float> laplace(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  auto u = torch::rand({n}, torch::kDouble) - 0.5;
  auto x = -u.sign() * torch::log1p(-2 * u.abs());  // Laplace(0, 1)
  auto f = x.to(torch::kFloat).contiguous();
  return {f.data_ptr<float>(), f.data_ptr<float>() + n};
}
}  // namespace

TEST(ClipRule, ParsesAndPrintsAndListsValidValues) {
  for (auto s : {"max", "mse", "aciq", "kl", "fixed:0.5", "percentile:99.99"})
    EXPECT_EQ(ClipRule::parse(s).to_string(), s);
  EXPECT_THROW_MESSAGE(
      ClipRule::parse("entropy"), std::invalid_argument,
      "valid values: max, fixed:C (0<C<=1), mse, aciq, kl, percentile:P (0<P<=100)");
  EXPECT_THROW_MESSAGE(ClipRule::parse("fixed:0"), std::invalid_argument, "c must be in (0, 1]");
  EXPECT_THROW_MESSAGE(ClipRule::parse("fixed:1.5"), std::invalid_argument, "c must be in (0, 1]");
  EXPECT_THROW_MESSAGE(ClipRule::parse("percentile:0"), std::invalid_argument,
                       "p must be in (0, 100]");
  EXPECT_THROW_MESSAGE(ClipRule::parse("percentile:101"), std::invalid_argument, "(0, 100]");
  EXPECT_THROW_MESSAGE(ClipRule::parse("percentile:abc"), std::invalid_argument,
                       "must be a number");
  EXPECT_THROW_MESSAGE(ClipRule::parse("max:3"), std::invalid_argument, "unknown clip rule");
}

TEST(ClipRule, HandComputedThresholds) {
  EXPECT_FLOAT_EQ(alpha("max", {0.1f, -0.4f, 2.0f}, 4), 2.0f);
  EXPECT_FLOAT_EQ(alpha("fixed:0.5", {0.1f, -0.4f, 2.0f}, 4), 1.0f);
  std::vector<float> hundred;
  for (int i = 1; i <= 100; ++i) hundred.push_back(i % 2 ? -float(i) : float(i));
  EXPECT_FLOAT_EQ(alpha("percentile:99", hundred, 4), 99.0f);
  EXPECT_FLOAT_EQ(alpha("percentile:100", hundred, 4), 100.0f);
  EXPECT_FLOAT_EQ(alpha("percentile:0.5", hundred, 4), 1.0f);
  // The mse example of the header: keeping the outlier wins at 2 bits.
  EXPECT_FLOAT_EQ(alpha("mse", {0.1f, 0.1f, 0.1f, 1.0f}, 2), 1.0f);
}

TEST(ClipRule, AllZeroAndConstantGroups) {
  for (auto r : {"max", "mse", "aciq", "kl", "percentile:99.9", "fixed:0.3"}) {
    EXPECT_EQ(alpha(r, {0, 0, 0, 0}, 4), 0.0f) << r;
  }
  // A constant group: every rule but fixed keeps α = |c| (aciq's b and σ are 0 -> max).
  for (auto r : {"max", "mse", "aciq", "kl", "percentile:99.9"})
    EXPECT_FLOAT_EQ(alpha(r, std::vector<float>(50, -0.7f), 4), 0.7f) << r;
}

TEST(ClipRule, AciqConstantsMatchTheTable) {
  const double laplace_table[] = {2.83, 3.89, 5.03, 6.20, 7.41, 8.64, 9.89};
  const double gauss_table[] = {1.71, 2.15, 2.55, 2.94, 3.29, 3.61, 3.92};
  for (int b = 2; b <= 8; ++b) {
    EXPECT_NEAR(aciq_laplace_coefficient(b), laplace_table[b - 2], 0.01) << b;
    EXPECT_NEAR(aciq_gauss_coefficient(b), gauss_table[b - 2], 0.01) << b;
  }
}

TEST(ClipRule, OnLaplaceDataClippingBeatsMaxAt4Bits) {
  auto w = laplace(20000, 3);
  const int64_t n = static_cast<int64_t>(w.size());
  const double max_err = quantization_mse(w.data(), n, alpha("max", w, 4), 4);
  for (auto r : {"mse", "aciq", "kl", "percentile:99.9"}) {
    const float a = alpha(r, w, 4);
    EXPECT_LT(a, alpha("max", w, 4)) << r;
    EXPECT_LT(quantization_mse(w.data(), n, a, 4), max_err) << r;
  }
  // mse is the best of the rules on its own objective (up to its grid).
  const double mse_err = quantization_mse(w.data(), n, alpha("mse", w, 4), 4);
  for (auto r : {"aciq", "kl", "percentile:99.9"})
    EXPECT_LE(mse_err, quantization_mse(w.data(), n, alpha(r, w, 4), 4) * 1.02) << r;
  // ACIQ on Laplace data picks ~5.03 b (b = 1 here).
  EXPECT_NEAR(alpha("aciq", w, 4), 5.03, 0.3);
}

TEST(ClipRule, HistogramObjectiveForLargeGroupsAgreesWithExact) {
  // Above 65,536 weights mse uses a 2,048-bin histogram of |w|; on the same weights, the same
  // two-stage search (20 steps over [0, max], then 20 over the best step's neighbours) with the
  // exact objective is the reference. The histogram moves each |w| by at most half a bin, so the
  // two minima may differ by the fine grid's step (max/200) either way plus a bin (max/2048).
  auto w = laplace(200000, 4);
  const int64_t n = static_cast<int64_t>(w.size());
  float mx = 0;
  for (float x : w) mx = std::max(mx, std::fabs(x));
  auto f = [&](double a) { return quantization_mse(w.data(), n, static_cast<float>(a), 4); };
  int best = 20;
  double best_err = f(mx), a_exact = mx;
  for (int k = 1; k < 20; ++k)
    if (f(mx * k / 20.0) < best_err) best_err = f(mx * k / 20.0), best = k, a_exact = mx * k / 20.0;
  const double lo = mx * std::max(best - 1, 0) / 20.0, hi = mx * std::min(best + 1, 20) / 20.0;
  for (int k = 1; k < 20; ++k) {
    const double a = lo + (hi - lo) * k / 20;
    if (f(a) < best_err) best_err = f(a), a_exact = a;
  }
  const float a_hist = alpha("mse", w, 4);
  EXPECT_NEAR(a_hist, a_exact, 2 * mx / 200.0 + mx / 2048.0);
  // And its exact MSE is within 1% of the exact search's.
  EXPECT_LE(f(a_hist), best_err * 1.01);
}

TEST(ClipRule, SingleOutlierIsClippedByMseButKeptByMax) {
  std::vector<float> w(1000);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = 0.01f * static_cast<float>(static_cast<int>(i % 21) - 10);
  // A moderate outlier: keeping it (α = 1, s = 1/7) rounds the bulk coarsely (MSE ~1.4e-3);
  // clipping it to ~0.1 costs (0.9)² / 1000 = 8.1e-4 and keeps the bulk fine.
  w[500] = 1.0f;
  EXPECT_FLOAT_EQ(alpha("max", w, 4), 1.0f);
  EXPECT_LT(alpha("mse", w, 4), 0.5f);
  EXPECT_LT(alpha("percentile:99", w, 4), 0.5f);
  // A huge one (10) is worth keeping: clipping it would cost (9.9)² / 1000 = 0.098.
  w[500] = 10.0f;
  EXPECT_FLOAT_EQ(alpha("mse", w, 4), 10.0f);
}

TEST(ClipRule, KlAtHighBitsIsMax) {
  auto w = laplace(5000, 5);
  EXPECT_FLOAT_EQ(alpha("kl", w, 16), alpha("max", w, 16));
}

TEST(ClipRule, MidriseGridAtTwoBitsHalvesTheGaussianError) {
  // Max (1960), Table I: the best 4-level uniform quantizer of a Gaussian has MSE 0.1175 σ², the
  // best 3-level (ternary: 2-bit midtread) one 0.1902 σ². The mse rule on 20,000 draws finds
  // both, on the exact objective and on the large-group histogram one.
  torch::manual_seed(7);
  for (int64_t n : {int64_t{20000}, int64_t{70000}}) {
    auto w = torch::randn({n});
    const float* p = w.data_ptr<float>();
    const ClipRule mse = ClipRule::parse("mse");
    const float a3 = choose_alpha(mse, p, n, 2, Grid::kMidtread);
    const float a4 = choose_alpha(mse, p, n, 2, Grid::kMidrise);
    const double e3 = quantization_mse(p, n, a3, 2, Grid::kMidtread);
    const double e4 = quantization_mse(p, n, a4, 2, Grid::kMidrise);
    EXPECT_NEAR(e3, 0.1902, 0.01) << n;
    EXPECT_NEAR(e4, 0.1175, 0.01) << n;
    // The exact objective of the midrise grid against its reference quantizer.
    std::vector<float> v(p, p + 100);
    const auto fq = reference_fake_quantize(v, a4, 2, Grid::kMidrise);
    double want = 0;
    for (size_t i = 0; i < v.size(); ++i) want += (v[i] - fq[i]) * (v[i] - fq[i]);
    EXPECT_NEAR(quantization_mse(p, 100, a4, 2, Grid::kMidrise), want / 100, 1e-9);
  }
}
