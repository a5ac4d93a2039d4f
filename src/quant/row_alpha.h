// Each vocabulary row's α chosen by its own cost (QuantConfig::row_alpha_factors): the step a
// row is stored with at a width is the one the row's cost at that width prefers, among a few
// multiples of the clip rule's.
//
// With row widths every row v of the embedding, the decoder or the tied matrix is priced at each
// width b by s_v(b) = s_v(δ_v(b)), the cost its widths are allocated by (quant/row_widths.h: the
// decoder's ½ δᵀ F_v δ over the calibration positions, the tied objective's ½ δᵀ H_v δ,
// f_v ‖W_ih δ‖² for the untied embedding, f_v ‖δ‖² by frequency), δ_v(b) = w_v − ŵ_v(b) the
// row's error. The clip rule picks α_v(b) by the weight error alone (mse: min ‖δ‖²) — before
// GPTQ's compensation, and blind to which directions the cost weighs. Here
//   c_v(b) = argmin_{c ∈ C} s_v(w_v − ŵ_v(b, c · α_v(b))),
// ŵ_v(b, α) the row rounded at width b with α (to nearest or by its GPTQ compensation — rows are
// independent once their steps are fixed, so one pass per factor serves every row), C the
// configured factors; the row keeps that step, its codes and its cost, and the allocation then
// runs on the minimised costs. Each factor costs one more quantization and pricing of the
// vocabulary matrices at every width (the decoder's Fisher factorisations are shared).
//
// Worked example (a row of 4 priced by frequency, s = f ‖δ‖², width 2 on the midrise grid — codes
// ±1, ±3 times s = α / 3 — clip max, C = {0.85, 1}): w = [1.0, 0.1, −0.1, 0.2] has α = 1; c = 1
// gives s = 1/3, ŵ = [1, 1/3, −1/3, 1/3], ‖δ‖² = 0.1267; c = 0.85 gives s = 0.2833, ŵ = [0.85,
// 0.2833, −0.2833, 0.2833], ‖δ‖² = 0.0967 → c = 0.85. w = [1, −1, 1/3, −1/3] lies on the c = 1
// grid (‖δ‖² = 0) while c = 0.85 leaves 0.05 → c = 1. (tests/row_alpha_test.cpp.)
//
// Source: range setting by the loss instead of the weight error, as the cross-entropy range
// setting of the layer feeding a softmax in Nagel et al., "A White Paper on Neural Network
// Quantization" (arXiv:2106.08295, 2021, §3.4), here per row with the second-order costs the
// row widths already measure; QuantConfig::alpha_by_output is the per-matrix-Hessian analogue
// (W_ih/W_hh's layer output error, which is not the model's loss, and did not help).
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "quant/prepared_matrix.h"

namespace lmquant {

// A block of rows quantized at each of K widths with one α factor per row and width: each
// width's preparation and codes, and every row's cost there.
struct RowCandidates {
  std::vector<Prepared> parts;       // per width
  std::vector<torch::Tensor> codes;  // per width, [rows, cols'] int16
  torch::Tensor cost;                // [K, rows] float64
  torch::Tensor factor;              // [K, rows] float64: the α factor each row has
};

// Takes from `candidate` each (width, row) whose cost is lower than `best`'s: its steps, α,
// codes, cost and factor (ties keep `best`). Both of the same rows and widths.
void keep_cheaper_rows(RowCandidates& best, const RowCandidates& candidate);

// How many rows got each factor ("%g" of it) at their allocated width: `widths` the width set
// of `factor`'s rows (the K quantized widths), `row_bits` each row's allocated width (rows at a
// width not in `widths`, the 0-bit rows, are not counted).
std::map<std::string, int64_t> rows_at_factor(const torch::Tensor& factor,
                                              const std::vector<int>& widths,
                                              const std::vector<int>& row_bits);

}  // namespace lmquant
