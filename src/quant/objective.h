// What a matrix's rounding minimises once every group's step is fixed (the clip rule chose α):
// one objective per matrix, chosen by quant/matrix_plan.h from the configuration and the matrix.
//
//   weight  Σ_ij (W − Ŵ)²_ij: each weight to its nearest grid point, on its own (rounding
//           nearest). Every matrix without another objective.
//   inputs  ‖(W − Ŵ) Xᵀ‖²_F = Σ_r δ_rᵀ H δ_r,  H = XᵀX over the calibration inputs X [N, n] of the
//           matrix (quant/calibration.h: the data-flow order, the matrices below already
//           quantized), δ_r = w_r − ŵ_r. W_ih and W_hh of a layer are one matrix [W_ih | W_hh] on
//           [x_t ; h_{t−1}]; the untied decoder on the top h_t (its logits, gptq_decoder).
//           Rounded by GPTQ (quant/gptq.h: Frantar et al., ICLR 2023).
//   feed    the untied embedding: a row e_v only reaches the model as W_ih e_v (layer 0), so
//           Σ_v ‖W_ih (e_v − ê_v)‖² = Σ_v δ_vᵀ H δ_v with H = W_ihᵀ W_ih (the float W_ih; one H
//           for every row, so token frequencies do not change the solution). GPTQ with that H
//           (gptq_embedding).
//   fisher  the untied decoder against the output distribution: Σ_v ½ δ_vᵀ F_v δ_v, F_v the
//           diagonal block of the softmax's Fisher, one Hessian per row (quant/decoder_fisher.h:
//           the derivation, its tractable form, a worked example). GPTQ row by row
//           (fisher_decoder).
//   tied    the tied embedding/decoder matrix, in both roles at once: row v with its own
//           H_v = F_v + f_v M, the decoder's Fisher block plus its token's frequency times the
//           second moment of the loss's gradient at the embedding (quant/tied_objective.h: the
//           derivation, its approximation, a worked example). GPTQ row by row (fisher_decoder or
//           gptq_embedding on a tied model).
//
// Worked example (feed; one embedding row, W_ih = [[1, 1]] so H = [[1, 1], [1, 1]], step 1,
// λ = 0.01 dampening): e = [0.4, 0.4]. Nearest: ê = [0, 0], ‖W_ih δ‖² = 0.8² = 0.64. GPTQ rounds
// column 0 to 0 and moves its error onto column 1: with H_λ = H + 0.01 I, [H_λ⁻¹]₀₁ / [H_λ⁻¹]₀₀ =
// −1/1.01, so w₁ ← 0.4 + 0.4/1.01 = 0.796 → 1: ê = [0, 1], W_ih δ = 0.4 + 0.4 − 1 = −0.2,
// ‖W_ih δ‖² = 0.04 — sixteen times less than nearest although ‖δ‖² is larger (0.52 vs 0.32).
// (tests/objective_test.cpp computes it.)
#pragma once
#include <torch/torch.h>

#include <string>

namespace lmquant {

enum class Objective { kWeight, kInputs, kFeed, kFisher, kTied };
std::string to_string(Objective o);                  // "weight", "inputs", "feed", "fisher", "tied"
Objective parse_objective(const std::string& name);  // throws listing the valid names

// Whether an objective is minimised by error-compensating rounding (all but kWeight).
bool compensated(Objective o);

// The feed objective's Hessian H = W_ihᵀ W_ih (double, [E, E]) from layer 0's W_ih [4H, E].
torch::Tensor feed_hessian(const torch::Tensor& w_ih);

// The objective's value for one row δ = w − ŵ [n] with Hessian H [n, n]: δᵀ H δ (double).
double quadratic_error(const torch::Tensor& delta, const torch::Tensor& hessian);

}  // namespace lmquant
