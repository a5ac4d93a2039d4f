// Negative log-likelihood of targets under logits, the cost centre of LM evaluation.
//
// NLL_r = logsumexp(z_r) - z_r[y_r], with logsumexp(z) = m + log Σ_j exp(z_j - m), m = max_j z_j.
// Example: z = [1, 2, 3], y = 2: m = 3, Σ exp = e^-2 + e^-1 + 1 = 1.5032, NLL = log 1.5032 =
// 0.4076.
//
// The CPU kernels below make one pass per row with a vectorisable exp (Cephes' expf polynomial,
// max relative error ~2e-7 on x <= 0) and allocate nothing per logit: log_softmax would write a
// second [N, V] tensor. Results agree with torch::log_softmax to ~1e-6 relative
// (tests/nll_test.cpp). (The large gap first measured against log_softmax here was mostly the
// page faults of fresh buffers, which util/runtime.h's configure_allocator removes for both.)
// Non-CPU tensors go through LibTorch's own ops.
#pragma once
#include <torch/torch.h>

#include <functional>

namespace lmquant {

// The row kernels of the one-pass and blocked NLL (vectorised, one clone per ISA), also used by
// lm/divergence.h: max_j z_j of z[0..n) (n >= 1), and Σ_j exp(z_j − m) (with `out`, each
// exp(z_j − m) written there too).
float row_max(const float* z, int64_t n);
float exp_sum(const float* z, int64_t n, float m, float* out = nullptr);

// Σ_r NLL_r in double. logits [N, V] float, targets [N] int64.
double sum_nll(const torch::Tensor& logits, const torch::Tensor& targets);

// Σ_r NLL_r of the decoder's logits z = h Wᵀ + b without ever holding the [N, V] logits: the
// vocabulary is cut into blocks of `block` columns, each thread takes a run of blocks, computes
// its [N, block] logits into one reused buffer that stays in cache, and keeps a running
// log-sum-exp per row (m, s):  m' = max(m, max_j z_j),  s' = s·e^(m − m') + Σ_j e^(z_j − m');
// the threads' (m, s) are merged the same way and the target logit is read from its block.
// Example, one row z = [1, 2 | 3] in blocks of 2: after block 1 (m, s) = (2, e^-1 + 1) =
// (2, 1.3679); block 2: m' = 3, s' = 1.3679·e^-1 + 1 = 1.5032 — as the one-pass logsumexp
// (nll.h's example). h [N, H], weight [V, H], bias [V] float, targets [N] int64. Non-CPU or
// non-float tensors take torch's addmm + sum_nll.
double decoder_nll(const torch::Tensor& h, const torch::Tensor& weight, const torch::Tensor& bias,
                   const torch::Tensor& targets, int64_t block = 1024);

// The blocked log-sum-exp itself, for any producer of logits: `logits(j0, n, z, ld)` writes the
// logits of vocabulary columns [j0, j0 + n) of all N rows into z (row stride ld >= n); it is
// called from several threads at once, each with its own z. targets [N] int64 in [0, V).
// With `rows` (N doubles) each row's NLL_r is written there too.
using BlockLogits = std::function<void(int64_t j0, int64_t n, float* z, int64_t ld)>;
double blocked_nll(int64_t N, int64_t V, const torch::Tensor& targets, int64_t block,
                   const BlockLogits& logits, double* rows = nullptr);

// NLL_r per row, [N] float64.
torch::Tensor row_nll(const torch::Tensor& logits, const torch::Tensor& targets);

// mean_r NLL_r with autograd: the gradient (softmax(z_r) - onehot(y_r)) / N is computed in the
// forward pass by the same kernel (one exp per logit in all), then scaled by the incoming grad.
// On CPU it CONSUMES the logits: their storage is overwritten with the gradient (saving a
// 93 MB buffer per 20x35 batch of a 33k vocabulary), so the logits must not be read afterwards
// (a matrix product's backward does not read its output, so `loss(addmm(...))` is safe).
torch::Tensor fused_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace lmquant
