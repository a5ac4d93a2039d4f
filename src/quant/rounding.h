// Rounding: how a prepared matrix's weights become codes once its steps are fixed, for each
// objective of quant/objective.h.
//
//   nearest   code = clamp(round(w / s), ±qmax) per weight (the weight objective).
//   gptq      GPTQ (quant/gptq.h) with the objective's Hessian H over the matrix's natural
//             inputs, moved into the basis the codes are in: OCS-widened inputs x' = x[idx]
//             give H' = H[idx, idx] (duplicated inputs: singular, handled by the dampening);
//             rotated inputs x_Q = Qᵀ x give H_Q = Qᵀ H Q (block-diagonal over matrices
//             compensated together, one Q each). Matrices compensated together (W_ih, W_hh of
//             a layer) are one matrix [W_ih | W_hh] on [x_t ; h_{t−1}].
//   gptq with alpha_by_output: each row's α chosen from kAlphaFactors × the clip rule's by
//             c_r = argmin_c (w_r − ŵ_r(c))ᵀ H (w_r − ŵ_r(c)) (quant_config.h: the worked example).
//   fisher    GPTQ row by row, row v with its own F_v (quant/decoder_fisher.h), in the rotated
//             basis when rotated (Qᵀ F_v Q), a block of rows' Hessians formed and factored once
//             for every quantization of the same rows (each row width).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "quant/decoder_fisher.h"
#include "quant/gptq.h"
#include "quant/prepared_matrix.h"

namespace lmquant {

// The configuration's GPTQ settings (dampening, column order, grid).
GptqOptions gptq_options(const QuantConfig& config);

// Codes to nearest and the finished matrix.
MatrixResult round_to_nearest(Prepared p);

// Compensated codes of the matrices `prepare(c)` gives with every α scaled by c, against
// `hessian` over their natural inputs (concatenated in `prepare`'s order). With `search_alpha`
// (alpha_by_output), c is chosen per row from kAlphaFactors by the row's compensated output
// error and the returned parts carry each row's chosen steps and α; otherwise c = 1.
std::pair<std::vector<Prepared>, torch::Tensor> searched_codes(
    const std::function<std::vector<Prepared>(double)>& prepare, const torch::Tensor& hessian,
    const QuantConfig& config, bool search_alpha);

// searched_codes, each part finished.
std::vector<MatrixResult> compensate_with(
    const std::function<std::vector<Prepared>(double)>& prepare, const torch::Tensor& hessian,
    const QuantConfig& config, bool search_alpha);

// The per-row Hessians in the basis `p`'s codes are in (rotated: Qᵀ F_v Q).
DecoderFisher in_basis_of(const DecoderFisher& fisher, const Prepared& p);

// Factorisations of a DecoderFisher's families (decoder_fisher.h family_keys), kept across the
// row blocks of one matrix while they fit in kFamilyCacheBytes (beyond it a family is factored
// again in each block that needs it).
inline constexpr int64_t kFamilyCacheBytes = int64_t{1} << 30;
struct FamilyFactors {
  std::map<int64_t, GptqRowFactors> factors;
  int64_t bytes = 0;
};

// Codes of prepared decoders (the same unwidened rows in one basis, e.g. at each row width; rows
// first_row.. of the matrix) compensated row by row against the output distribution `fisher`,
// given in the parts' basis (in_basis_of). Rows of one family share its factorisation (`cache`,
// if given, keeps them for the matrix's next blocks: the same fisher only).
std::vector<torch::Tensor> fisher_codes(const std::vector<Prepared>& parts,
                                        const DecoderFisher& fisher, const QuantConfig& config,
                                        int64_t first_row = 0, FamilyFactors* cache = nullptr);

}  // namespace lmquant
