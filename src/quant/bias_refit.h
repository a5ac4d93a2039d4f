// The decoder's bias refitted to the float model's output distribution once every weight is
// quantized ("bias refit"). The bias stays float (it is stored at 32 bits either way, so the
// size does not change); only its values move, to undo what the quantized weights shifted on
// average.
//
// The float model gives p_t = softmax(W h_t + b) at calibration position t (h_t its top-layer
// output); the quantized one p̂_t = softmax(Ŵ ĥ_t + b̂), ĥ_t the top-layer output with every
// matrix quantized. The bias minimises the mean KL over the N calibration positions:
//
//     L(b̂) = (1/N) Σ_t KL(p_t ‖ p̂_t) = (1/N) Σ_t [ lse(Ŵ ĥ_t + b̂) − p_tᵀ (Ŵ ĥ_t + b̂) ] + const,
//
// convex in b̂, with ∂L/∂b̂_v = (P̂_v − P_v) / N, P_v = Σ_t p_tv and P̂_v = Σ_t p̂_tv: at the
// optimum the quantized model gives every token the float model's total probability over the
// calibration positions. Solved by generalised iterative scaling (Darroch & Ratcliff, 1972):
//
//     b̂_v ← b̂_v + log(P_v / P̂_v),
//
// which never increases L: the bias features of a softmax, [y = v], sum to one at every
// position (GIS's condition, with C = 1), and the fixed logits Ŵ ĥ_t act as a base measure.
// Each iteration is one pass over the positions (an [N, V] product in blocks of positions).
// The refit starts from the float bias b, so zero iterations leave it unchanged.
//
// Worked example (V = 2, n = 1, N = 1): W = [0, 0], b = [0, 0], h = 1 give p = [1/2, 1/2]; the
// quantized Ŵ = [ln 2, 0] with ĥ = 1 gives p̂ = [2/3, 1/3]. One step: b̂ = [log(3/4), log(3/2)],
// logits [ln 2 + log(3/4), log(3/2)] = [log(3/2), log(3/2)], p̂ = [1/2, 1/2] = p: L from
// (1/2) log(3/4) + (1/2) log(3/2) ≈ 0.0589 nats to 0. (With one position the optimum matches p_t
// itself; with many, the marginals.)
//
// Sources: bias correction of quantized layers' mean output shift (Nagel et al., "Data-Free
// Quantization Through Weight Equalization and Bias Correction", ICCV 2019: b −= E[(Ŵ − W) x]);
// here the shift is measured in the output distribution instead of the logits, since a softmax
// ignores a shift shared by every logit. GIS: J. N. Darroch and D. Ratcliff, "Generalized
// Iterative Scaling for Log-Linear Models", Ann. Math. Statist. 43(5), 1972.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace lmquant {

inline constexpr int kBiasRefitIterations = 8;

struct BiasRefit {
  torch::Tensor bias;      // b̂ [V] float
  std::vector<double> kl;  // L(b̂) in nats: at the float bias, then after each iteration
};

// h [N, n], W [V, n], b [V]: the float decoder and its inputs; h_hat [N, n], w_hat [V, n]: the
// quantized model's. Throws std::invalid_argument on mismatched shapes or iterations < 0.
BiasRefit refit_decoder_bias(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b,
                             const torch::Tensor& h_hat, const torch::Tensor& w_hat,
                             int iterations = kBiasRefitIterations);

}  // namespace lmquant
