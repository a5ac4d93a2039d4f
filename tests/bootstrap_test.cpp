// The paired block bootstrap (report/bootstrap.h): the header's worked example, degenerate
// cases, determinism, and agreement with the normal approximation on a synthetic stream.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "report/bootstrap.h"

using namespace lmquant;

TEST(Bootstrap, WorkedExampleOfTheHeader) {
  // Two chunks of one target each, a − b = (0.1, 0.3): Δ = 100(e^0.2 − 1); the draws give
  // 100(e^0.1 − 1) with p = 1/4 and 100(e^0.3 − 1) with p = 1/4, so both tails are those values.
  const auto p = paired_bootstrap({1.1, 2.3}, {1.0, 2.0}, {1, 1}, kBootstrapResamples,
                                  kBootstrapSeed, /*min_chunks=*/2);
  EXPECT_NEAR(p.delta_pct, 22.1403, 1e-3);
  EXPECT_NEAR(p.ci_low, 10.5171, 1e-3);
  EXPECT_NEAR(p.ci_high, 34.9859, 1e-3);
  EXPECT_TRUE(p.significant());
  EXPECT_EQ(p.resamples, kBootstrapResamples);
}

TEST(Bootstrap, IdenticalEvaluationsAndConstantShifts) {
  const std::vector<double> a = {3.0, 5.0, 4.0};
  const std::vector<int64_t> n = {350, 350, 100};
  auto same = paired_bootstrap(a, a, n, 2000, 1, 1);
  EXPECT_EQ(same.delta_pct, 0);
  EXPECT_EQ(same.ci_low, 0);
  EXPECT_EQ(same.ci_high, 0);
  EXPECT_FALSE(same.significant());
  // The same shift per target in every chunk: every draw gives the same Δ.
  auto shifted = paired_bootstrap({3.0 + 35, 5.0 + 35, 4.0 + 10}, a, n, 2000, 1, 1);
  EXPECT_NEAR(shifted.ci_low, shifted.delta_pct, 1e-9);
  EXPECT_NEAR(shifted.ci_high, shifted.delta_pct, 1e-9);
  EXPECT_NEAR(shifted.delta_pct, 100 * std::expm1(0.1), 1e-9);
}

TEST(Bootstrap, DeterministicAndRefusesDifferentStreams) {
  std::mt19937 g(1);
  std::normal_distribution<double> d(0, 1);
  std::vector<double> a(100), b(100);
  for (auto& x : a) x = 700 + d(g);
  for (auto& x : b) x = 700 + d(g);
  const std::vector<int64_t> n(100, 350);
  const auto p1 = paired_bootstrap(a, b, n), p2 = paired_bootstrap(a, b, n);
  EXPECT_EQ(p1.ci_low, p2.ci_low);
  EXPECT_EQ(p1.ci_high, p2.ci_high);
  EXPECT_THROW(paired_bootstrap(a, std::vector<double>(99, 1.0), n), std::invalid_argument);
  EXPECT_THROW(paired_bootstrap({}, {}, {}), std::invalid_argument);
  // Too few chunks: the difference, no interval, never "significant".
  const auto few = paired_bootstrap({1.1, 2.3}, {1.0, 2.0}, {1, 1});
  EXPECT_EQ(few.resamples, 0);
  EXPECT_NEAR(few.delta_pct, 22.1403, 1e-3);
  EXPECT_FALSE(few.significant());
}

TEST(Bootstrap, AgreesWithTheNormalApproximation) {
  // 700 chunks of 350 targets, per-chunk NLL differences iid N(μ, σ²): Σd/Σn has standard error
  // σ√C / (350 C), so Δ's 95% interval is ≈ 100(exp((μ ± 1.96 σ/√C) / 350) − 1).
  const int C = 700;
  const double mu = 7.0, sigma = 20.0;
  std::mt19937 g(7);
  std::normal_distribution<double> d(mu, sigma);
  std::vector<double> a(C), b(C, 1000.0);
  std::vector<int64_t> n(C, 350);
  double sum = 0;
  for (int i = 0; i < C; ++i) {
    const double x = d(g);
    a[static_cast<size_t>(i)] = 1000.0 + x;
    sum += x;
  }
  const double mean = sum / C, se = sigma / std::sqrt(static_cast<double>(C));
  const double lo = 100 * std::expm1((mean - 1.96 * se) / 350);
  const double hi = 100 * std::expm1((mean + 1.96 * se) / 350);
  const auto p = paired_bootstrap(a, b, n, 4000);
  EXPECT_NEAR(p.delta_pct, 100 * std::expm1(mean / 350), 1e-9);
  // Within 10% of the interval's half-width (bootstrap noise at 4,000 resamples is ~2-3%).
  const double half = (hi - lo) / 2;
  EXPECT_NEAR(p.ci_low, lo, 0.1 * half);
  EXPECT_NEAR(p.ci_high, hi, 0.1 * half);
}

TEST(Bootstrap, Spread) {
  const Spread s = spread_of({1, 2, 3, 4});
  EXPECT_EQ(s.n, 4);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.std, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_EQ(spread_of({5}).std, 0);
  EXPECT_EQ(spread_of({}).n, 0);
}
