// Error-compensating rounding (GPTQ: Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate
// Post-Training Quantization for Generative Pre-trained Transformers", ICLR 2023; after Optimal
// Brain Quantization, Frantar & Alistarh, NeurIPS 2022, and Optimal Brain Surgeon, Hassibi &
// Stork 1993).
//
// A matrix W [rows, n] acts on inputs x ∈ Rⁿ. With calibration inputs X [N, n], the squared
// output error of a quantized Ŵ is Σ_r (w_r − ŵ_r)ᵀ H (w_r − ŵ_r) / 2 with H = 2 XᵀX / N, the same
// H for every row. GPTQ rounds the columns one at a time, in a fixed order, each with its group's
// fixed step (the clip rule chose α before the pass), and lets the columns not yet rounded absorb
// the error. With U the upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU), after rounding column j:
//
//     q_j = Q(w_j),   e = (w_j − q_j) / U_jj,   w_k ← w_k − e · U_jk   for every later column k.
//
// (This is OBS's  δw = −(w_j − q_j) / [H⁻¹]_jj · [H⁻¹]_{:,j}  with H⁻¹ shrunk to the columns not
// yet rounded after each step; the Cholesky rows give every step's shrunk inverse at once.)
//
// Worked example (one row, a step of 1, H = [[1, .5], [.5, 1]]):
//   H⁻¹ = [[4/3, −2/3], [−2/3, 4/3]],  U = [[2/√3, −1/√3], [0, 1]].
//   w = [0.4, 0.4]: q_0 = round(0.4) = 0, e = 0.4 / (2/√3) = 0.2√3, w_1 ← 0.4 + 0.2√3 · 1/√3 = 0.6,
//   q_1 = round(0.6) = 1. Ŵ = [0, 1]; output error (w−ŵ)ᵀH(w−ŵ) = 0.28, round-to-nearest's
//   Ŵ = [0, 0] gives 0.48.
//
// Conditioning: H += λ · mean(diag H) · I (dampening, λ = 0.01 by default), which also makes the
// H of duplicated inputs (OCS) invertible; if the factorisation still fails, λ is raised ×10 up
// to 3 times. A dead input (H_jj = 0: never active on the calibration data) gets H_jj = 1 and no
// coupling, so its weights are rounded to nearest and leave the others alone (GPTQ's code zeroes
// them instead; lmquant does not assume an input dead on calibration is dead on test).
// Order: natural (column 0 first) or by decreasing H_jj ("act order": the most active inputs
// first, while the most columns remain to absorb their error). Groups stay those of the
// original column index whatever the order, since the steps are fixed before the pass.
// Implementation: blocks of 128 columns (GPTQ's lazy batch updates): inside a block, rank-1
// updates of the block's columns; after it, one matrix product updates all later columns.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "quant/uniform_quantizer.h"

namespace lmquant {

enum class GptqOrder { kNatural, kDiagonal };
std::string to_string(GptqOrder o);
GptqOrder parse_gptq_order(const std::string& s);  // "natural" or "diag"

struct GptqOptions {
  double damp = 0.01;  // λ
  GptqOrder order = GptqOrder::kNatural;
  int64_t block = 128;
  Grid grid = Grid::kMidtread;  // the grid codes are rounded to (uniform_quantizer.h)
};

// H = 2 XᵀX / N in double, X [N, n].
torch::Tensor gptq_hessian(const torch::Tensor& x);

// Codes (int16, [rows, n]) for W [rows, n] with a step per weight `step` [rows, n] (0 = an
// all-zero group: code 0), codes clamped to ±qmax, compensated with H [n, n]. Throws
// std::invalid_argument on mismatched shapes, std::runtime_error when H stays singular.
torch::Tensor gptq_codes(const torch::Tensor& w, const torch::Tensor& step, int32_t qmax,
                         const torch::Tensor& hessian, const GptqOptions& options = {});
// The same with a qmax per column (matrices of different bit widths compensated together).
torch::Tensor gptq_codes(const torch::Tensor& w, const torch::Tensor& step,
                         const std::vector<int32_t>& qmax, const torch::Tensor& hessian,
                         const GptqOptions& options = {});

// The same with a Hessian per row, hessians [rows, n, n] (the decoder against its output
// distribution, quant/decoder_fisher.h): row r is compensated with its own H_r, its column order
// (options.order) from H_r's diagonal, and gets the codes gptq_codes(w[r], step[r], qmax, H_r)
// gives (the same dampening, dead inputs and ×10 retries, per row).
torch::Tensor gptq_row_codes(const torch::Tensor& w, const torch::Tensor& step,
                             const std::vector<int32_t>& qmax, const torch::Tensor& hessians,
                             const GptqOptions& options = {});

// The per-row form in two steps, for several quantizations of the same rows (each row width of
// a vocabulary matrix): each row's column order and U_r (upper Cholesky factor of H_r⁻¹, H_r
// dampened), factored once. U_r comes from one Cholesky factorisation of the reversed H_r:
// J H J = L Lᵀ (J the reversal) gives H⁻¹ = (J L⁻¹ J)ᵀ (J L⁻¹ J) with J L⁻¹ J upper triangular.
struct GptqRowFactors {
  torch::Tensor order;  // int64 [rows, n]: row r's columns in the order they are rounded
  torch::Tensor u;      // double [rows, n, n]: U_r in that order
};
GptqRowFactors gptq_row_factors(const torch::Tensor& hessians, const GptqOptions& options = {});
// gptq_row_codes with factors of one Hessian ([1, n] order, [1, n, n] U) serve every row.
torch::Tensor gptq_row_codes(const torch::Tensor& w, const torch::Tensor& step,
                             const std::vector<int32_t>& qmax, const GptqRowFactors& factors,
                             Grid grid);

// The plain reference for tests: the OBS form with an explicit inverse shrunk after every
// column, in double, one weight at a time (no Cholesky, no blocks); same dampening, dead inputs
// and order.
torch::Tensor reference_gptq_codes(const torch::Tensor& w, const torch::Tensor& step, int32_t qmax,
                                   const torch::Tensor& hessian, const GptqOptions& options = {});

}  // namespace lmquant
