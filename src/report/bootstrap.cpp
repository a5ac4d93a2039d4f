#include "report/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <tuple>
#include <utility>

namespace lmquant {
namespace {

// The block bootstrap both intervals share: chunks drawn with replacement (C per resample, one
// generator seeded with `seed`), stat(Σ x_i, Σ n_i) over the drawn chunks, R times; the 2.5th
// and 97.5th percentiles (the k-th order statistic, k = ⌊q·(R−1)⌋).
template <typename Stat>
std::pair<double, double> percentile_interval(const std::vector<double>& x,
                                              const std::vector<int64_t>& n, int resamples,
                                              uint64_t seed, Stat stat) {
  const size_t C = x.size();
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, C - 1);
  std::vector<double> stats(static_cast<size_t>(resamples));
  for (auto& s : stats) {
    double sx = 0, sn = 0;
    for (size_t k = 0; k < C; ++k) {
      const size_t i = pick(rng);
      sx += x[i];
      sn += static_cast<double>(n[i]);
    }
    s = stat(sx, sn);
  }
  std::sort(stats.begin(), stats.end());
  auto quantile = [&](double q) {
    return stats[static_cast<size_t>(std::floor(q * static_cast<double>(resamples - 1)))];
  };
  return {quantile(0.025), quantile(0.975)};
}

}  // namespace

nlohmann::json PairedInterval::to_json() const {
  return {{"delta_pct", delta_pct},
          {"ci_low", ci_low},
          {"ci_high", ci_high},
          {"resamples", resamples},
          {"significant", significant()}};
}

PairedInterval PairedInterval::from_json(const nlohmann::json& j) {
  PairedInterval p;
  p.delta_pct = j.value("delta_pct", 0.0);
  p.ci_low = j.value("ci_low", 0.0);
  p.ci_high = j.value("ci_high", 0.0);
  p.resamples = j.value("resamples", 0);
  return p;
}

PairedInterval paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b,
                                const std::vector<int64_t>& n, int resamples, uint64_t seed,
                                size_t min_chunks) {
  const size_t C = a.size();
  if (C == 0 || b.size() != C || n.size() != C)
    throw std::invalid_argument(
        "paired bootstrap: the two evaluations must have the same chunks (" +
        std::to_string(a.size()) + " vs " + std::to_string(b.size()) +
        " chunks); compare evaluations of the same stream");
  if (resamples < 1) throw std::invalid_argument("paired bootstrap: resamples must be positive");
  std::vector<double> d(C);
  double sum_d = 0, sum_n = 0;
  for (size_t i = 0; i < C; ++i) {
    d[i] = a[i] - b[i];
    sum_d += d[i];
    sum_n += static_cast<double>(n[i]);
  }
  auto pct = [](double diff, double tokens) { return 100.0 * std::expm1(diff / tokens); };
  PairedInterval out;
  out.delta_pct = pct(sum_d, sum_n);
  if (C < min_chunks) return out;
  out.resamples = resamples;
  std::tie(out.ci_low, out.ci_high) = percentile_interval(d, n, resamples, seed, pct);
  return out;
}

nlohmann::json MeanInterval::to_json() const {
  return {{"mean", mean}, {"ci_low", ci_low}, {"ci_high", ci_high}, {"resamples", resamples}};
}

MeanInterval MeanInterval::from_json(const nlohmann::json& j) {
  MeanInterval m;
  m.mean = j.value("mean", 0.0);
  m.ci_low = j.value("ci_low", 0.0);
  m.ci_high = j.value("ci_high", 0.0);
  m.resamples = j.value("resamples", 0);
  return m;
}

MeanInterval mean_bootstrap(const std::vector<double>& v, const std::vector<int64_t>& n,
                            int resamples, uint64_t seed, size_t min_chunks) {
  const size_t C = v.size();
  if (C == 0 || n.size() != C)
    throw std::invalid_argument("mean bootstrap: one value and one token count per chunk needed (" +
                                std::to_string(v.size()) + " values, " + std::to_string(n.size()) +
                                " counts)");
  if (resamples < 1) throw std::invalid_argument("mean bootstrap: resamples must be positive");
  double sv = 0, sn = 0;
  for (size_t i = 0; i < C; ++i) sv += v[i], sn += static_cast<double>(n[i]);
  MeanInterval out;
  out.mean = sv / sn;
  if (C < min_chunks) return out;
  out.resamples = resamples;
  std::tie(out.ci_low, out.ci_high) =
      percentile_interval(v, n, resamples, seed, [](double a, double b) { return a / b; });
  return out;
}

Spread spread_of(const std::vector<double>& v) {
  Spread s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() < 2) return s;
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(ss / static_cast<double>(v.size() - 1));
  return s;
}

}  // namespace lmquant
