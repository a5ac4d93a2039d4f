// The decoder compensated against the output distribution: a Hessian per row from the Fisher
// information of the softmax ("Fisher GPTQ").
//
// The decoder maps the top layer's output h_t ∈ Rⁿ to logits z_t = W h_t + b, p_t = softmax(z_t).
// Quantizing W (Ŵ = W − Δ) moves the logits by δz_t = −Δ h_t, and to second order
//
//     KL(p_t ‖ p̂_t) ≈ ½ δz_tᵀ (diag p_t − p_t p_tᵀ) δz_t
//
// (diag p − p pᵀ is the Hessian of the cross-entropy in z, the Fisher information of the softmax).
// Keeping its diagonal blocks — dropping the coupling −p_tv p_tu between two rows, the term that
// makes a shift shared by every logit free — the mean KL over N calibration positions separates
// into one quadratic form per row:
//
//     KL ≈ ½ Σ_v δ_vᵀ F_v δ_v,    F_v = (1/N) Σ_t a_tv h_t h_tᵀ,    a_tv = p_tv (1 − p_tv),
//
// so each row is rounded by GPTQ (quant/gptq.h gptq_row_codes) with its own F_v instead of the
// logits' H = (1/N) Σ_t h_t h_tᵀ, which weighs every position alike whichever token the row scores.
// A row is compensated where its token is plausible.
//
// Tractable form. V Hessians of n² (33,278 × 200² = 1.3e9 entries, 5.3 GB in float) and V·N·n²
// multiply-adds (2.4e13 at N = 17,920) are too many for a CPU: per position t only the `keep` rows
// with the largest a_tv are taken exactly, and the rest of each row's mass enters through the mean
// second moment of the inputs:
//
//     F_v ≈ (1/N) [ Σ_{t ∈ S_v} a_tv h_t h_tᵀ + (A_v − Σ_{t ∈ S_v} a_tv) · H̄ ],
//     S_v = {t : v among the `keep` largest a_t·},  A_v = Σ_t a_tv (exact, from the full softmax),
//     H̄ = (1/N) Σ_t h_t h_tᵀ.
//
// Stored: the N·keep kept pairs (position, a) sorted by row, A_v and H̄; the F_v are formed a block
// of rows at a time (hessians()). Cost: the N×V softmax once, N·keep·n² multiply-adds to form
// (17,920 × 256 × 200² = 1.8e11 on wt2-lstm200). The approximation is exact when a row's a_tv does
// not depend on t, and when keep ≥ V.
//
// Worked example (n = 1, V = 3, N = 2, W = 0, b = [0, ln 2, ln 5], h = [1, 2]): p_t = [1, 2, 5]/8
// at both positions, a = [7, 12, 15]/64, H̄ = (1 + 4)/2 = 5/2. Exactly:
// F_v = a_v (1 + 4)/2 = [35, 60, 75]/128. With keep = 1 only row 2 is kept, F_2 = (15/64)(1 + 4)/2
// = 75/128 and rows 0, 1 come from the tail: F_0 = (1/2)(2 · 7/64)(5/2) = 35/128, F_1 = 60/128 —
// the same, since a does not depend on t here.
//
// GPTQ is greedy: the per-row codes are not guaranteed to beat another Hessian's on F_v itself (a
// 30 × 12 random decoder: 0.061 vs the logits' 0.054); on larger ones they do (the test, 48 × 24).
//
// Measured (wt2-lstm200, valid[:50k], the decoder alone at 3 bits per row, mse α, the rest float,
// prototype): round to nearest 165.13, GPTQ on the logits 163.88, Fisher GPTQ 162.14 (float
// 158.99). Cost there: ~40 s per decoder on 2 cores (33,278 Hessians formed and factored once,
// shared by the five row widths of a bits-per-row cell: its quantization took 58 s instead of 17
// s).
//
// Sources: the Fisher/Hessian of the output loss as the weight metric — Optimal Brain Surgeon
// (Hassibi & Stork 1993), BRECQ (Li et al., ICLR 2021: the output's Fisher as the block
// reconstruction weight), GPTQ (Frantar et al., ICLR 2023) for the per-row rounding.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace lmquant {

// Rows kept exactly per calibration position (the rest through A_v and H̄).
inline constexpr int64_t kFisherKeep = 256;
// The bins of ρ in DecoderFisher::family_keys: powers of 2^(1/16).
inline constexpr double kFamilyRatio = 1.0442737824274138;

class DecoderFisher {
 public:
  // h [N, n]: the decoder's inputs on the calibration slice; W [V, n], bias [V]: the float decoder
  // (its p_t). Throws std::invalid_argument on mismatched shapes or keep < 1.
  DecoderFisher(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& bias,
                int64_t keep = kFisherKeep);
  // F_v (double [r1 − r0, n, n]) for rows [r0, r1).
  torch::Tensor hessians(int64_t r0, int64_t r1) const;
  // The same Hessians for the rotated matrix W Q (quant/rotation.h), whose input is Qᵀ h:
  // Qᵀ F_v Q (the inputs rotated once, the pairs shared; a shared term too).
  DecoderFisher rotated(const torch::Tensor& q) const;
  // F_v + scale_v · M for every row (scale double [V], M double [n, n]): the tied objective
  // (quant/tied_objective.h). Throws std::invalid_argument on mismatched shapes.
  DecoderFisher with_shared_term(const torch::Tensor& scale, const torch::Tensor& m) const;
  // The same for the rows listed (int64 [k]), in their order: F [k, n, n].
  torch::Tensor hessians(const torch::Tensor& rows) const;
  // Rows that share one factorisation. GPTQ is invariant to a Hessian's scale (its dampening
  // scales with it, its updates use ratios of U's entries), and a row without kept pairs has
  //   F_v = (A_v / N) H̄              (A_v > 0; 70% of wt2-lstm200's 33,278 decoder rows at
  //                                    keep = 256): family 0, H̄, exactly;
  //   F_v + s_v M = (A_v / N)(H̄ + ρ_v M),  ρ_v = s_v N / A_v   with a shared term (the tied
  //       objective): a one-parameter family. ρ_v is rounded to the nearest power of
  //       kFamilyRatio, and the rows of one bin share H̄ + ρ_bin M — their Hessian's H̄ part exact,
  //       its M part within ±2.2% (2^(1/32) − 1). Without this every tied row had its own n × n
  //       factorisation: 33,278 of 1,500² for the large preset, which did not finish in 48 min;
  //   s_v M (A_v = 0, s_v > 0): family 1, M.
  // For rows [r0, r1): the family key (int64 ≥ 0) of each, or −1 where the row has kept pairs or a
  // zero Hessian (it gets its own).
  torch::Tensor family_keys(int64_t r0, int64_t r1) const;
  // A family's matrix (double [n, n], in this Fisher's basis): its rows' Hessians up to scale.
  torch::Tensor family_hessian(int64_t key) const;
  // H̄ (double [n, n]) in this Fisher's basis.
  const torch::Tensor& mean_hessian() const { return hbar_; }
  int64_t rows() const { return tail_.size(0); }
  int64_t positions() const { return h_.size(0); }
  // Σ_kept a / Σ_all a: the share of the Fisher mass taken exactly.
  double kept_share() const { return kept_share_; }

 private:
  DecoderFisher() = default;
  torch::Tensor h_;        // [N, n] float
  torch::Tensor pos_;      // [pairs] int64, sorted by row
  torch::Tensor weight_;   // [pairs] float: a_tv of each kept pair
  torch::Tensor offsets_;  // [V + 1] int64: row v's pairs are [offsets_[v], offsets_[v + 1])
  torch::Tensor tail_;     // [V] double: A_v − Σ kept a_tv
  torch::Tensor hbar_;     // [n, n] double: (1/N) Σ h hᵀ
  torch::Tensor shared_scale_, shared_m_;  // with_shared_term's [V] and [n, n], or undefined
  double kept_share_ = 0;
};

}  // namespace lmquant
