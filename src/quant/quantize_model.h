// The plan that applies a quantizer (and OCS) to a model's named matrices:
//   embedding (V x E, OCS splits its E columns), input.l{k} (W_ih), recurrent.l{k} (W_hh),
//   decoder (V x H). Biases stay float. With tied weights, embedding and decoder are one matrix,
//   quantized once (reported as "embedding+decoder").
//
// The orchestration: the configuration (quant/quant_config.h) → the plan of every matrix
// (quant/matrix_plan.h: its objective, widths, rotation) → per matrix, in data-flow order:
// prepare (quant/prepared_matrix.h: OCS or rotation, α per group, steps) → the objective's
// Hessian (quant/objective.h) on calibration inputs collected with the matrices before it
// already quantized → rounding (quant/rounding.h; with row widths quant/row_width_rounding.h)
// → install into the realisations and the accounting (quant/size_accounting.h). Two
// realisations of the result:
//   folded:   the plain model with Ŵ (same function up to float summation order; float speed);
//   expanded: the widened Ŵ' with the LSTM's index lists (what a deployment runs).
#pragma once
#include <vector>

#include "lm/lstm_lm.h"
#include "quant/calibration.h"
#include "quant/matrix_plan.h"
#include "quant/matrix_report.h"
#include "quant/quant_config.h"
#include "quant/quantized_matrix.h"
#include "quant/size_accounting.h"

namespace lmquant {

struct QuantizedModel {
  QuantConfig config;  // as applied (applied_config; the solved row budget of bits_per_weight)
  QuantConfig asked;   // as asked
  LstmLm folded{nullptr};
  LstmLm expanded{nullptr};     // build_expanded only
  LstmLm transformed{nullptr};  // build_expanded and OCS: W' before rounding (= float function)
  std::vector<MatrixReport> matrices;
  std::vector<QuantizedMatrix> tensors;
  // Whole-model accounting (quantized matrices at their bits plus a step per group of
  // scale_bits(granularity) bits; all other weights at 32 bits).
  int64_t params_before = 0, params_after = 0, macs_before = 0, macs_after = 0;
  double size_bits = 0, float_size_bits = 0;
  double seconds = 0;  // time to choose α, split and quantize
  // refit_decoder_bias: the calibration KL at the float bias, then after each iteration.
  std::vector<double> bias_refit_kl;
};

// Quantizes the targeted matrices. Rounding gptq and row widths need `calibration`
// (quant/calibration.h, drawn from the train split): the matrices are then compensated in the order
// the data flows (embedding, layer 0, layer 1, ..., decoder), each on the inputs produced by the
// matrices before it already quantized. Throws std::invalid_argument when gptq or row widths have
// no calibration, or when config.bits_per_weight is out of reach (saying the reachable range).
QuantizedModel quantize_model(const LstmLm& model, const QuantConfig& config,
                              const Calibration* calibration = nullptr);

}  // namespace lmquant
