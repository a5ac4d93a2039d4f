// A matrix ready to be rounded, and a rounded matrix finished: the steps between the plan
// (quant/matrix_plan.h) and the rounding (quant/rounding.h).
//
//   prepare: W → [OCS: W' = split W | rotation: W' = W Q] → α per group (the clip rule, on W'
//            or with alpha_on_original on W) → every weight's step s = α / qmax (stored as
//            float16 where the granularity or half_scales says) → [grid-aware OCS: re-split].
//   finish:  codes → Ŵ' = codes · s → Ŵ in the input basis (OCS folded, rotation undone) →
//            the matrix's report (errors, α, accounting).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "lm/matrices.h"
#include "quant/matrix_report.h"
#include "quant/quant_config.h"
#include "quant/quantized_matrix.h"

namespace lmquant {

// A matrix ready to be rounded: W, the OCS-split W', each group's α and every weight's step.
struct Prepared {
  const NamedMatrix* matrix = nullptr;
  torch::Tensor w;      // W (rows x cols), float, CPU
  torch::Tensor split;  // W' (rows x cols'), = W without OCS; grid-aware if on
  torch::Tensor step;   // every weight's step (rows x cols')
  std::vector<float> alpha;
  QuantizedMatrix q;  // name, plan, step per group, group size (codes come later)
  int bits = 0;       // the matrix's width; with row widths the widest
  Grid grid = Grid::kMidtread;
  std::vector<int> row_bits;  // each row's width (row widths), else empty
  torch::Tensor rot;          // Q with rotation (split = W Q), else undefined
  // qmax of every row [rows, 1] (float).
  torch::Tensor row_qmax() const {
    if (row_bits.empty())
      return torch::full({w.size(0), 1}, static_cast<float>(UniformQuantizer(bits, grid).qmax()));
    auto q = torch::empty({w.size(0), 1});
    for (size_t r = 0; r < row_bits.size(); ++r)  // a 0-bit row (the zero row): qmax 0
      q[static_cast<int64_t>(r)][0] =
          row_bits[r] == 0 ? 0.0f : static_cast<float>(UniformQuantizer(row_bits[r], grid).qmax());
    return q;
  }
};

struct MatrixResult {
  torch::Tensor split;    // W' before rounding
  torch::Tensor dequant;  // Ŵ' (rows x cols')
  torch::Tensor folded;   // Ŵ (rows x cols)
  QuantizedMatrix q;
  MatrixReport report;
};

// W of matrix m prepared for rounding under `config`, every α scaled by `alpha_factor` (the
// α search of alpha_by_output). `w` may be a block of the matrix's rows starting at `first_row`
// (row or group scales only: each row's steps are its own; the rounding spread's jitter draws
// continue where the rows before left them), giving those rows exactly as the whole would.
Prepared prepare_matrix(const NamedMatrix& m, const torch::Tensor& w, const QuantConfig& config,
                        double alpha_factor = 1.0, int64_t first_row = 0);

// Rows `rows` (int64 indices) of `src`'s steps and α copied into `dst`: the two are the same
// rows of one matrix prepared with different α (row or group scales: each row's steps its own).
void take_rows(Prepared& dst, const Prepared& src, const torch::Tensor& rows);

// The result of rounding `p` to `codes` (int16, the shape of p.split).
MatrixResult finish_matrix(Prepared p, torch::Tensor codes);

}  // namespace lmquant
