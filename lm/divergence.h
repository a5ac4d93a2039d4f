// How far a (quantized) model's next-token distribution q is from the float model's p, per
// position, in the same pass that computes its NLL: llama.cpp's `perplexity --kl-divergence`
// measures, computed over vocabulary blocks (no [N, V] logits are held, neither model's).
//
// Per row r (a position), from the float logits z^p and the quantized logits z^q:
//   KL(p‖q)_r = Σ_v p_v (log p_v − log q_v) = Σ_v p_v (z^p_v − z^q_v) − lse(z^p) + lse(z^q),
//   top-1 agreement_r = [argmax_v z^p_v = argmax_v z^q_v]   (ties: the lowest index),
//   NLL^q_r = lse(z^q) − z^q_y,  NLL^p_r = lse(z^p) − z^p_y.
// Running form over blocks (lm/nll.h's log-sum-exp, one more sum): keep (m, s, a) with
// m = max z^p seen, s = Σ e^(z^p − m), a = Σ e^(z^p − m)(z^p − z^q); when m grows to m', both s
// and a are multiplied by e^(m − m'). At the end Σ_v p_v (z^p_v − z^q_v) = a / s.
//
// Worked example: z^p = [0, ln 2] (p = [1/3, 2/3]), z^q = [0, 0] (q = [1/2, 1/2]):
//   a / s = (1·0 + 2·ln 2) / 3 = 0.462098, lse(z^p) = ln 3 = 1.098612, lse(z^q) = ln 2 = 0.693147,
//   KL = 0.462098 − 1.098612 + 0.693147 = 0.056633 nats
//      = 1/3 ln(2/3) + 2/3 ln(4/3); both argmaxes: p's is 1, q's is 0 (tie: lowest) → disagree.
//
// Source: Kullback & Leibler (1951); the convention of reporting mean KL to the unquantized model
// and top-1 agreement beside Δ perplexity: llama.cpp tools/perplexity (`--kl-divergence`).
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "lm/nll.h"

namespace lmquant {

struct PairedNll {
  double nll_p = 0;        // Σ_r NLL^p_r (the reference, float model)
  double nll_q = 0;        // Σ_r NLL^q_r (the model evaluated)
  double kl = 0;           // Σ_r KL(p‖q)_r, nats
  int64_t top1_agree = 0;  // rows whose argmaxes agree
};

// Both models' logits for N rows over a vocabulary of V, from two producers (lm/nll.h
// BlockLogits; each called from several threads at once), in blocks of `block` columns.
// targets [N] int64 in [0, V). With `kl_rows` / `nll_q_rows` (N doubles each) the per-row values
// are written there too.
PairedNll paired_blocked_nll(int64_t N, int64_t V, const torch::Tensor& targets, int64_t block,
                             const BlockLogits& p, const BlockLogits& q, double* kl_rows = nullptr,
                             double* nll_q_rows = nullptr);

// The plain reference (tests; tensors off the CPU): from whole logits z^p, z^q [N, V] with
// log_softmax in double. Rows: kl_rows / nll_q_rows as above.
PairedNll paired_nll_dense(const torch::Tensor& zp, const torch::Tensor& zq,
                           const torch::Tensor& targets, double* kl_rows = nullptr,
                           double* nll_q_rows = nullptr);

// The producer of a float decoder's logits z = h Wᵀ + b (CPU float tensors; h [N, H], W [V, H],
// b [V]; the tensors are detached and must outlive the producer).
BlockLogits float_decoder_logits(const torch::Tensor& h, const torch::Tensor& weight,
                                 const torch::Tensor& bias);

}  // namespace lmquant
