// How sure is a perplexity difference? A paired block bootstrap over evaluation chunks.
//
// Two evaluations A and B of the same token stream (lm/evaluate.h) give, per chunk i = 1..C
// (batch 10 × bptt 35 = 350 targets, the last chunk shorter), the summed NLL a_i and b_i and the
// number of targets n_i. Their perplexity ratio is
//   ppl_A / ppl_B = exp(Σ (a_i − b_i) / Σ n_i),   Δ% = 100 · (ppl_A / ppl_B − 1).
// The bootstrap draws C chunk indices with replacement (std::mt19937_64, fixed seed: the same
// inputs always give the same interval), recomputes Δ*% on the drawn chunks (numerator and
// denominator both resampled), R times; the 95% interval is the 2.5th and 97.5th percentiles of
// the Δ* (Efron's percentile interval; the k-th order statistic with k = ⌊q·(R−1)⌋). Blocks are
// whole chunks, not tokens, because the NLL of neighbouring tokens is correlated (the hidden
// state is carried); pairing removes what both models find hard, which is most of the variance.
// A difference is significant when its interval excludes 0. With fewer than kMinBootstrapChunks
// chunks (tiny test corpora) no interval is computed: resampling a handful of blocks says nothing.
//
// Worked example: C = 2 chunks of n = 1 target, a − b = (0.1, 0.3) nats. Δ = 100(e^0.2 − 1) =
// 22.14%. The four equally likely draws give mean differences 0.1, 0.2, 0.2, 0.3, i.e. Δ* =
// 10.52% (p = 1/4), 22.14% (1/2), 34.99% (1/4); both tails hold more than 2.5%, so the interval is
// [10.52%, 34.99%] and the difference is significant.
//
// Source: Efron & Tibshirani, "An Introduction to the Bootstrap" (1993), ch. 13 (percentile
// interval); Künsch (1989) for blocks of dependent data; paired comparisons of systems on one test
// set as in Koehn, "Statistical significance tests for machine translation evaluation" (2004).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace lmquant {

struct PairedInterval {
  double delta_pct = 0;  // 100 (ppl_A / ppl_B − 1) on the full stream
  double ci_low = 0;     // 95% interval of delta_pct
  double ci_high = 0;
  int resamples = 0;  // 0: not computed
  // The interval excludes 0.
  bool significant() const { return resamples > 0 && (ci_low > 0 || ci_high < 0); }
  nlohmann::json to_json() const;
  static PairedInterval from_json(const nlohmann::json& j);
};

inline constexpr int kBootstrapResamples = 2000;
inline constexpr size_t kMinBootstrapChunks = 10;
inline constexpr uint64_t kBootstrapSeed = 20190509;  // fixed: reports are reproducible

// Throws std::invalid_argument when the vectors differ in length (not the same stream) or are
// empty. `min_chunks`: below it, only delta_pct is set (resamples 0: no interval).
PairedInterval paired_bootstrap(const std::vector<double>& a_nll, const std::vector<double>& b_nll,
                                const std::vector<int64_t>& tokens,
                                int resamples = kBootstrapResamples, uint64_t seed = kBootstrapSeed,
                                size_t min_chunks = kMinBootstrapChunks);

// A per-token mean with its 95% interval over chunks: mean = Σ_i v_i / Σ_i n_i for per-chunk sums
// v_i over n_i tokens (e.g. Σ KL(p_float ‖ p_quant) of a chunk, or its count of top-1
// agreements), the interval from the same block bootstrap as paired_bootstrap (chunks drawn with
// replacement, numerator and denominator resampled, percentile interval, fixed seed). A KL is
// already a paired quantity (both models on the same positions), so this is its paired interval.
// Worked example: v = (0.1, 0.3), n = (1, 1): mean 0.2; the four draws give 0.1, 0.2, 0.2, 0.3,
// so the interval is [0.1, 0.3].
struct MeanInterval {
  double mean = 0;
  double ci_low = 0, ci_high = 0;
  int resamples = 0;  // 0: not computed (fewer than min_chunks chunks)
  nlohmann::json to_json() const;
  static MeanInterval from_json(const nlohmann::json& j);
};
MeanInterval mean_bootstrap(const std::vector<double>& sums, const std::vector<int64_t>& tokens,
                            int resamples = kBootstrapResamples, uint64_t seed = kBootstrapSeed,
                            size_t min_chunks = kMinBootstrapChunks);

// Mean and sample standard deviation (n − 1) of values; std 0 for fewer than two.
struct Spread {
  double mean = 0, std = 0;
  int n = 0;
};
Spread spread_of(const std::vector<double>& values);

}  // namespace lmquant
