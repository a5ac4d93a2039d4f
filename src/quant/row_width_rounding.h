// A vocabulary matrix with a width per row (quant/row_widths.h: the sensitivities and the
// allocation): the matrix quantized whole at every width of the configuration's row widths
// (to nearest; compensated with the objective's Hessian; or row by row with the decoder's Fisher
// Hessians), each row's error at each width measured by the plan's sensitivity, the widths
// allocated to the plan's row budget, and each row taken from the quantization at its width.
// Rows are independent: a row's codes and steps do not depend on the other rows, with or
// without compensation (GPTQ compensates within a row), so taking row r from the quantization
// at width b_r is the matrix quantized with widths b.
#pragma once
#include <torch/torch.h>

#include "quant/decoder_fisher.h"
#include "quant/matrix_plan.h"
#include "quant/prepared_matrix.h"

namespace lmquant {

// What row sensitivities are measured with (quant/row_widths.h).
struct RowData {
  torch::Tensor freq;          // [V] smoothed train frequencies
  torch::Tensor feed;          // W_ih of layer 0 (float): what an embedding row feeds
  torch::Tensor decoder_h;     // the float model's top-layer outputs on the calibration slice
  torch::Tensor decoder_bias;  // the float decoder's bias
  torch::Tensor moment;        // the tied objective's M (quant/tied_objective.h)
};

// The matrix of `plan` (W = w) with a width per row; `hessian` (over its natural inputs) when its
// objective compensates with one, `fisher` when with the decoder's per-row Hessians, else neither.
MatrixResult quantize_rows(const MatrixPlan& plan, const torch::Tensor& w,
                           const QuantConfig& config, const RowData& data,
                           const torch::Tensor& hessian, const DecoderFisher* fisher);

}  // namespace lmquant
