// One quantized matrix as codes: the int16 codes, each row's width (row widths), the steps per
// group, the OCS plan or the rotation, and how to get Ŵ back in the model's input basis. The
// packed and quantized files (quant/quantized_io.h) and the int8 engine read it.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "quant/ocs.h"

namespace lmquant {

struct QuantizedMatrix {
  std::string name;
  torch::Tensor codes;  // int16, rows x (cols + splits)
  // Each row's width (int8 [rows]) when rows have widths of their own; undefined when every row
  // has the matrix's width.
  torch::Tensor row_bits;
  torch::Tensor step;      // float [rows, steps per row]: each group's step s
  int64_t group_size = 0;  // columns per step (cols + splits when one step spans a row)
  OcsPlan plan;
  // With rotation (QuantConfig::rotate): the codes are of W Q; Q (float [cols, cols]) and the
  // seed it is drawn from (quant/rotation.h). Undefined / 0 otherwise.
  torch::Tensor rotation;
  uint64_t rotation_seed = 0;
  // The step of every weight [rows, cols + splits].
  torch::Tensor step_per_weight() const;
  // Ŵ in the model's input basis [rows, cols]: codes · steps, OCS halves added back onto their
  // sources, a rotation undone (Ŵ_Q Qᵀ).
  torch::Tensor dequantized() const;
};

// Every weight's step [rows, width] from one step per group of `group_size` columns of a row
// (step [rows] or [rows, groups per row]).
torch::Tensor steps_per_weight(const torch::Tensor& step, int64_t group_size, int64_t rows,
                               int64_t width);

// Ŵ (rows x cols, the model's input basis) from Ŵ' in the codes' basis: OCS halves folded back
// onto their sources, or a rotation Q undone (Ŵ_Q Qᵀ; `rot` undefined: none).
torch::Tensor to_input_basis(const torch::Tensor& deq, const OcsPlan& plan,
                             const torch::Tensor& rot);

}  // namespace lmquant
