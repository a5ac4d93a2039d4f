// Size accounting: what a quantized model stores, in bits, and the row budget that meets a size.
//
//   size = 32 · (every stored weight that is not quantized)
//        + Σ_quantized matrices [ codes + width tags + scales + rotation seed ]
//   codes:      bits_for(m) per weight, or with row widths Σ_rows b_r · width
//   width tags: ⌈log2 |W|⌉ bits per row with row widths (quant/row_widths.h)
//   scales:     scale_bits(granularity, half_scales) per group (quant/quant_types.h)
//   rotation:   64 bits (the seed Q is drawn from) per rotated matrix
//   bits per weight = size / (the float model's stored weights), as a record reports it.
//
// With row widths the size is linear in the shared row budget B (each row-width matrix without a
// budget of its own spends B · rows · cols): size(B) = a + b · B, so the budget that meets a
// size S is (S − a) / b, and the sizes reachable lie between B = the narrowest and B = the widest
// width. Worked example: a 2 × 4 embedding (row widths {2, 4}, row scales of 32 bits) and a
// float rest of 10 weights: size(B) = 320 + 8 B + 2 · 1 + 2 · 32 = 386 + 8 B over 18 weights;
// T = 24 bits per weight needs size 432, B = (432 − 386) / 8 = 5.75 — beyond the widest width 4,
// so out of reach (reachable: (386 + 16) / 18 = 22.33 to (386 + 32) / 18 = 23.22).
#pragma once
#include <utility>

#include "lm/lstm_lm.h"
#include "quant/matrix_report.h"
#include "quant/quant_config.h"
#include "quant/quantized_matrix.h"

namespace lmquant {

// The whole-model accounting quantize_model gives `config` (QuantizedModel::size_bits) without
// quantizing: every row-width matrix at exactly its row budget on average (the allocation spends
// at most that). Throws std::invalid_argument for OCS (its split count is not part of the
// configuration's storage rule here).
double predicted_size_bits(const LstmLmImpl& model, const QuantConfig& config);

// The shared row budget that makes predicted_size_bits(model, config) = size_bits (config's
// other settings kept, per-matrix row budgets included; no clamping to its widths).
double row_budget_for_size(const LstmLmImpl& model, QuantConfig config, double size_bits);

// The bits per weight `config` can reach by its shared row budget: [narrowest, widest] width.
std::pair<double, double> reachable_bits_per_weight(const LstmLmImpl& model,
                                                    const QuantConfig& config);

// The shared row budget that makes the model take `bits_per_weight` (QuantConfig::
// bits_per_weight). Throws std::invalid_argument saying the reachable range when it is out of
// reach, or when the configuration has no shared row budget to solve.
double row_budget_for_bits_per_weight(const LstmLmImpl& model, const QuantConfig& config,
                                      double bits_per_weight);

// How one quantized matrix changes the model's stored bits: its codes (at each row's width, with
// the width tags), its scales and its rotation seed, minus the 32-bit weights they replace.
double stored_bits_change(const MatrixReport& report, const QuantizedMatrix& q,
                          const QuantConfig& config);

}  // namespace lmquant
