// A vocabulary matrix with a width per row, streamed: the rows run in blocks of ~1M weights
// (row_block), each block prepared and rounded at every width, its rows' costs kept and its codes
// kept as int8 (every row width is at most 8 bits), so that what is held whole is the costs and
// one byte per weight per width, not every width's quantization (7 widths of a 33,278 × 650
// decoder held whole were 3 GB). A block's rows come out exactly as the whole matrix's would:
// steps, α and codes are per row, the jitter of the rounding spread continues across blocks, the
// Fisher Hessians are per row, and the decoder's softmax normalizers are computed once for all
// blocks (row_widths.h fisher_sensitivity_rows). OCS plans its splits over the whole matrix and
// runs as one block.
//
//  (quant/row_widths.h: the sensitivities and the
// allocation): the matrix quantized whole at every width of the configuration's row widths
// (to nearest; compensated with the objective's Hessian; or row by row with the decoder's Fisher
// Hessians), each row's error at each width measured by the plan's sensitivity, the widths
// allocated to the plan's row budget, and each row taken from the quantization at its width.
// With row α factors (quant/row_alpha.h) each width is quantized once per factor and each
// row keeps, per width, the factor its cost prefers, before the allocation.
// Rows are independent: a row's codes and steps do not depend on the other rows, with or
// without compensation (GPTQ compensates within a row), so taking row r from the quantization
// at width b_r is the matrix quantized with widths b.
#pragma once
#include <torch/torch.h>

#include "quant/decoder_fisher.h"
#include "quant/matrix_plan.h"
#include "quant/prepared_matrix.h"

namespace lmquant {

// Rows of a rows × cols matrix in one block (at least 1).
int64_t row_block(int64_t rows, int64_t cols);

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
// `block`: rows per block (0: row_block's).
MatrixResult quantize_rows(const MatrixPlan& plan, const torch::Tensor& w,
                           const QuantConfig& config, const RowData& data,
                           const torch::Tensor& hessian, const DecoderFisher* fisher,
                           int64_t block = 0);

}  // namespace lmquant
