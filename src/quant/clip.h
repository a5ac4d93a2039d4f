// Clip rules: how the clip threshold α of a group of weights is chosen (the quantizer then uses
// s = α / qmax, see uniform_quantizer.h). Each rule, with its formula and a worked example:
//
// max           α = max|w|. No clipping. w = [0.1, -0.4, 2.0] -> α = 2.0.
// fixed:c       α = c · max|w|, c in (0, 1]. fixed:0.5 on the same w -> α = 1.0.
// percentile:p  α = the p-th percentile of |w| by the nearest-rank rule: the ⌈p/100 · n⌉-th
//               smallest |w|, p in (0, 100]. |w| = [1..100], p = 99 -> α = 99.
// mse           α minimising the quantization MSE  E[(w - ŵ(α))²]  (clipping + rounding error),
//               by a coarse-to-fine grid search: 20 candidates k/20 · max|w| (k = 1..20), then 20
//               between the best's neighbours. The objective is exact (every weight) for groups
//               of at most 65,536 weights; larger groups use a 2,048-bin histogram of |w| with
//               bin centres (error < half a bin, ~0.025% of max|w|), which keeps α for a 21M-weight
//               decoder under a second. (Zhao et al.'s OCS code uses a coarser
//               201-bin histogram.)
//               Example, b = 2 (qmax 1), w = [0.1, 0.1, 0.1, 1.0]: α = max = 1 rounds the 0.1s
//               to 0 (MSE 0.0075); α ≈ 0.1 keeps them and clips 1.0 to 0.1 (MSE 0.2025): α = 1.
// aciq          Banner et al., "Post-training 4-bit quantization of convolution networks for
//               rapid deployment" (NeurIPS 2019), the analytical clip for a Laplace(b) or a
//               Gaussian(σ) prior, with b = mean|w - μ| and σ = std(w):
//                 Laplace:  α* = argmin 2b² e^(-α/b) + α² / (3 · 4^M)
//                 Gauss:    α* = argmin 2σ²[(1 + a²)(1 - Φ(a)) - a φ(a)] + α² / (3 · 4^M), a = α/σ
//               (M = bits). The constants are those of the table Distiller ships (Laplace 2.83,
//               3.89, 5.03, 6.20, 7.41, 8.64, 9.89 · b and Gauss 1.71, 2.15, 2.55, 2.94, 3.29,
//               3.61, 3.92 · σ for 2..8 bits); lmquant solves the formulas for any M (tests check
//               the table). Of the two α (each capped at max|w|), the one with lower MSE on the
//               group wins.
// kl            TensorRT / MXNet entropy calibration on |w|: a histogram of B bins over
//               [0, max|w|] (B = 2048, fewer for small groups: max(8·L, n/4)); for each candidate
//               i (up to 128 evenly spaced in [L, B]), P = the first i bins with the tail summed
//               into bin i, Q = P's first i bins merged into L = qmax + 1 levels and spread back
//               over their non-empty bins; α = (i + 0.5) · bin width of the i minimising KL(P‖Q).
//               When L ≥ B (≥ 12 bits) there is nothing to merge and α = max|w|.
#pragma once
#include <torch/torch.h>

#include <string>

#include "quant/uniform_quantizer.h"

namespace lmquant {

struct ClipRule {
  enum class Kind { kMax, kFixed, kMse, kAciq, kKl, kPercentile };
  Kind kind = Kind::kMax;
  double param = 0;  // c for fixed, p for percentile

  // "max", "fixed:C", "mse", "aciq", "kl", "percentile:P"; throws std::invalid_argument listing
  // the valid forms, or naming C / P out of range.
  static ClipRule parse(const std::string& s);
  std::string to_string() const;
};

// α for one group of n weights at the given bit width (2..16) on `grid` (uniform_quantizer.h;
// mse, aciq and kl measure the rounding on that grid; kl merges into its positive levels).
float choose_alpha(const ClipRule& rule, const float* w, int64_t n, int bits,
                   Grid grid = Grid::kMidtread);

// Quantization MSE of the group for threshold α (exact, every weight).
double quantization_mse(const float* w, int64_t n, float alpha, int bits,
                        Grid grid = Grid::kMidtread);

// The ACIQ constants α*/b (Laplace) and α*/σ (Gauss) for M bits, solved from the formulas above.
double aciq_laplace_coefficient(int bits);
double aciq_gauss_coefficient(int bits);

}  // namespace lmquant
