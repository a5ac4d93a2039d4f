// The tied objective: what a row of a tied embedding/decoder matrix should be rounded against.
//
// With tied weights (pytorch/examples' --tied, AWD-LSTM, fastai; Press & Wolf, EACL 2017; Inan,
// Khosravi & Socher, ICLR 2017) row v is read twice: looked up as the embedding of token v, and
// scored as the decoder row of token v. Its rounding error δ_v costs in both roles. To second
// order in δ, in the Fisher (Gauss-Newton) form the decoder's own objective uses
// (quant/decoder_fisher.h), the mean loss per token rises by
//
//   ΔL ≈ ½ Σ_v δ_vᵀ (F_v + G_v) δ_v,
//   F_v = (1/N) Σ_t p_tv (1 − p_tv) h_t h_tᵀ       the decoder role (decoder_fisher.h)
//   G_v = (1/N) Σ_{t: x_t = v} E_y[g_t g_tᵀ]        the embedding role,
//
// g_t = ∂(Σ_s ℓ_s)/∂x_t the gradient of the window's negative log-likelihood with respect to the
// embedding vector read at position t (it reaches every later prediction of the window through
// W_ih and the recurrence), the expectation over targets drawn from the model (the Fisher: one
// draw per position, seeded). Dropped: the coupling between rows and between a row's two roles.
//
// G_v as written needs the positions where v is read, and most of a 33,278-word vocabulary never
// occurs among 17,920 calibration positions. Assuming the gradient's second moment does not
// depend on which token was read (the independence K-FAC assumes between a layer's inputs and
// its output gradients: Martens & Grosse, ICML 2015),
//
//   G_v ≈ f_v · M,   M = (1/N) Σ_t E_y[g_t g_tᵀ]  (one E × E matrix),
//
// f_v the token's add-one-smoothed frequency on the whole train split (row_widths.h
// smoothed_frequency): every row has evidence, M from the calibration slice and f_v from all of
// train. (The untied embedding's feed objective, objective.h, is this form with M = W_ihᵀ W_ih,
// where f_v cancels: one H for every row.) The tied row's Hessian
//
//   H_v = F_v + f_v M
//
// rounds it by GPTQ row by row (as the Fisher decoder), and prices it at each width for row
// widths: s_v(b) = ½ δ_v(b)ᵀ H_v δ_v(b), the decoder part taken over every calibration
// position (row_widths.h fisher_sensitivity) and the embedding part ½ f_v δ_vᵀ M δ_v.
//
// Worked example (n = 2): F_v = [[2, 0], [0, 1]], f_v = 0.1, M = [[3, 1], [1, 1]]:
// H_v = [[2.3, 0.1], [0.1, 1.1]]. For δ = [0.1, −0.2], ½ δᵀ H_v δ = ½ (0.023 − 0.004 + 0.044) =
// 0.0315 nats per token: the decoder's ½ δᵀ F_v δ = 0.03 and the embedding's ½ f_v δᵀ M δ =
// ½ · 0.1 · 0.03 = 0.0015. (tests/tied_objective_test.cpp.)
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "lm/lstm_lm.h"
#include "quant/calibration.h"
#include "quant/decoder_fisher.h"

namespace lmquant {

// M = (1/N) Σ_t g_t g_tᵀ (double [E, E]) over the calibration positions, each g_t the gradient of
// its window's NLL with targets drawn from the model's own distribution (`seed`), the model in
// eval mode (no dropout). Columns run in batches that keep the [positions, V] logits small.
torch::Tensor embedding_fisher_moment(const LstmLm& model, const Calibration& calibration,
                                      uint64_t seed = 1);

// The tied matrix's Hessians H_v = F_v + f_v M: the decoder Fisher of `decoder` (on the top
// layer's outputs) with the shared term of `freq` [V] and `moment` [E, E].
DecoderFisher tied_fisher(const DecoderFisher& decoder, const torch::Tensor& freq,
                          const torch::Tensor& moment);

// The embedding part of s_v(b), ½ f_v δ_vᵀ M δ_v, for each error δ [V, n] of `errors` (freq
// [V]). → [|errors|, V] float64.
torch::Tensor tied_embedding_sensitivity(const std::vector<torch::Tensor>& errors,
                                         const torch::Tensor& freq, const torch::Tensor& moment);

// s_v(b) for each error δ [V, n] of `errors`: the decoder part (fisher_sensitivity, exact over
// the positions h of the float model with decoder W and bias) plus ½ f_v δ_vᵀ M δ_v.
// → [|errors|, V] float64.
torch::Tensor tied_sensitivity(const std::vector<torch::Tensor>& errors, const torch::Tensor& h,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               const torch::Tensor& freq, const torch::Tensor& moment);

}  // namespace lmquant
