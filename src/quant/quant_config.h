// A quantization configuration: what is asked of quantize_model (quant/quantize_model.h). Its
// fields, their validation (validate: every value and combination, errors naming the setting),
// its JSON form (the record's "config"), its label ("gptq mse 4b row") and its plot family.
// What each matrix actually gets is the plan's (quant/matrix_plan.h); a record holds the applied
// configuration (applied_config), in which settings that applied to no matrix are reset.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "quant/clip.h"
#include "quant/gptq.h"
#include "quant/quant_types.h"
#include "quant/row_widths.h"
#include "quant/uniform_quantizer.h"

namespace lmquant {

// The factors QuantConfig::alpha_by_output tries on each row's α.
inline constexpr double kAlphaFactors[] = {0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05};

struct QuantConfig {
  Method method = Method::kClip;
  int bits = 4;
  ClipRule clip;
  Granularity granularity = Granularity::kTensor;
  std::vector<Target> targets = {Target::kEmbedding, Target::kInput, Target::kRecurrent,
                                 Target::kDecoder};
  // The quantization grid (quant/uniform_quantizer.h): midtread (a zero level, 2^b − 1 levels)
  // or midrise (all 2^b levels, no zero; 2..7 bits). Every quantized matrix uses it.
  Grid grid = Grid::kMidtread;
  // Row, gate and tensor steps stored (and rounded when chosen) as float16, counted at 16 bits;
  // group steps always are (quant_types.h scale_bits).
  bool half_scales = false;
  // Incoherence processing (quant/rotation.h): every quantized matrix is stored as Ŵ_Q ≈ W Q
  // with Q a Haar-random rotation of its input width (one per width, seeded by rotation_seed and
  // the repeat index), the function being Ŵ_Q Qᵀ; gptq sees H_Q = Qᵀ H Q. Not with OCS.
  bool rotate = false;
  uint64_t rotation_seed = 1;
  double expand_ratio = 0;         // OCS: ⌈r · in⌉ splits per matrix
  bool grid_aware = false;         // OCS: the ∓s/4 split
  bool alpha_on_original = false;  // OCS: choose α on W instead of the split W'
  bool build_expanded = false;     // also build the expanded (and unrounded expanded) models
  // Mixed precision: bit widths for single matrices by name ("embedding" -> 4), overriding
  // `bits` for them (lm/matrices.h names; the tied matrix is "embedding+decoder").
  std::map<std::string, int> matrix_bits;
  int bits_for(const std::string& matrix) const;
  // Scale granularity for single matrices by name, overriding `granularity` for them (the joint
  // mixed-precision solver chooses one per matrix: experiment/joint_allocation.h).
  std::map<std::string, Granularity> matrix_granularity;
  Granularity granularity_for(const std::string& matrix) const;
  // How codes are chosen once α is fixed: nearest, or gptq (error-compensating; needs a
  // calibration slice of train, see quantize_model). Then W_ih and W_hh of a layer are
  // compensated as one matrix [W_ih | W_hh] on [x_t ; h_{t−1}], the decoder on the top h_t; the
  // embedding (no input to compensate with) and a tied embedding/decoder (its lookup rows would
  // absorb the decoder's corrections) are rounded to nearest. The decoder is compensated only
  // with gptq_decoder: its objective ‖WX − ŴX‖² on the logits does not follow perplexity (on
  // wt2-lstm200 valid, 3 b mse per row, compensating the decoder alone raised the loss: +2.57%
  // vs +1.67% rounded to nearest), so by default it is rounded to nearest.
  Rounding rounding = Rounding::kNearest;
  int64_t calib_sequences = 512;  // gptq: calibration sequences of 35 tokens
  double damp = 0.01;             // gptq: λ of the dampening λ · mean(diag H)
  // gptq column order; diag (decreasing H_jj, GPTQ's "act order") was better on valid (3 b mse
  // per row: +3.90% vs +5.00% natural).
  GptqOrder gptq_order = GptqOrder::kDiagonal;
  bool gptq_decoder = false;  // gptq: also compensate the (untied) decoder
  // gptq: compensate the (untied) decoder against the output distribution instead: each row v
  // with its own Hessian F_v = (1/N) Σ_t p_tv (1 − p_tv) h_t h_tᵀ, the diagonal block of the
  // softmax's Fisher (quant/decoder_fisher.h: the derivation, the tractable form, a worked
  // example). Not with gptq_decoder (one objective for the decoder) nor alpha_by_output.
  bool fisher_decoder = false;
  // gptq: round the (untied) embedding against what it feeds instead of to nearest: each row e
  // minimises ‖W_ih (e − ê)‖² with W_ih of layer 0 (GPTQ on the embedding's columns with
  // H = W_ihᵀ W_ih, the float W_ih; the same H for every row, so token frequencies do not
  // change the solution).
  bool gptq_embedding = false;
  // gptq: each row's α chosen by what the compensation leaves at the matrix's output instead of
  // by the clip rule's weight objective alone: with α_r the clip rule's choice for row r (every
  // group of the row scaled alike), the factor
  //   c_r = argmin_{c ∈ kAlphaFactors} (w_r − ŵ_r(c))ᵀ H (w_r − ŵ_r(c)),
  // ŵ_r(c) the row's GPTQ codes with α = c · α_r, H the Hessian it is compensated with (rows are
  // independent under GPTQ once their steps are fixed, so one pass per factor serves all rows).
  // A grid-search analogue of OmniQuant's learnable weight clipping (Shao et al., ICLR 2024),
  // which learns the clipping by a block's output error. Applies to the compensated matrices
  // (W_ih/W_hh; the embedding with gptq_embedding, H = W_ihᵀ W_ih; the decoder with
  // gptq_decoder); those rounded to nearest keep the clip rule's α. Needs row or group:G scales.
  // Example (one row, H = I, so the objective is the weight error, 2-bit midrise, clip max):
  // w = [1.0, 0.1, −0.1, 0.2]: c = 1 gives s = 1/3, ŵ = [1, 1/3, −1/3, 1/3], error 0.1267;
  // c = 0.85 gives s = 0.2833, ŵ = [0.85, 0.2833, −0.2833, 0.2833], error 0.0967, the least over
  // the factors (0.8 and 0.9 give 0.1000, 0.6 gives 0.18) → c = 0.85, α = 0.85.
  bool alpha_by_output = false;
  // Once every matrix is quantized, refit the decoder's float bias so that the quantized model's
  // output distribution is the float model's on the calibration positions: minimise the mean
  // KL(p_t ‖ p̂_t) over the bias, convex, by generalised iterative scaling (quant/bias_refit.h:
  // the derivation, a worked example, its sources). The bias is stored at 32 bits either way:
  // the size does not change. Needs calibration data (with any rounding).
  bool refit_decoder_bias = false;
  // Bits per row for the vocabulary matrices (quant/row_widths.h): with row_widths set (e.g.
  // {2, 3, 4, 8}), each row of the embedding and of the decoder (or of the tied matrix) that has
  // no matrix_bits entry gets one of these widths, the matrix's mean width at most row_budget,
  // allocated by row_sensitivity (the train split's token frequencies; for the untied decoder
  // with kOutput its diagonal-block Fisher on the calibration slice). Needs row or group:G
  // scales and calibration data; the other matrices stay at bits_for().
  std::vector<int> row_widths;
  double row_budget = 0;
  // A whole-model size instead of a row budget: the shared row budget is solved when the model
  // is quantized so that the model takes exactly this many bits per weight as the record counts
  // them (quant/size_accounting.h; the allocation spends at most the budget, so the record's
  // size is at most T). 0: row_budget as given. Needs row widths; the applied configuration
  // carries both T and the solved budget.
  double bits_per_weight = 0;
  // A row budget for single row-width matrices by name ("embedding" -> 2.3), overriding
  // row_budget for them (the joint solver splits the vocabulary's bits between the embedding
  // and the decoder).
  std::map<std::string, double> matrix_row_budget;
  double row_budget_for(const std::string& matrix) const;
  RowSensitivity row_sensitivity = RowSensitivity::kOutput;
  // With row widths: each vocabulary row's α at each width chosen among these factors × the clip
  // rule's by the row's cost at that width — the cost the widths are allocated by (row_widths.h:
  // the decoder's Fisher, the tied objective, frequency × ‖W_ih δ‖², frequency × ‖δ‖²), so the
  // step a row is stored with is the one its own cost prefers (quant/row_alpha.h: the rule, a
  // worked example, its source). Empty: the clip rule's α. Not with OCS.
  std::vector<double> row_alpha_factors;
  bool has_row_widths() const { return !row_widths.empty(); }
  // Whether quantize_model needs a Calibration: gptq rounding or row widths.
  bool needs_calibration() const;
  // Rounding spread: 0 = α as the clip rule chose it; k > 0 = another equally good rounding, each
  // group's α multiplied by a factor uniform in [0.99, 1.01] drawn with seed k.
  int repeat = 0;

  // Throws std::invalid_argument naming the setting and its value (bits, ratio, combinations).
  void validate() const;
  // The configuration as a JSON object ({"method": "float"} for the float model); build_expanded
  // is how it is realised, not what it is, and is not part of it.
  nlohmann::json to_json() const;
  static QuantConfig from_json(const nlohmann::json& j);
  bool operator==(const QuantConfig& o) const;
  // The one label of a configuration: "float", "clip mse 4b row", "ocs r=0.05 max 4b tensor grid".
  // Without bits: the name of one method across bit widths (plots).
  std::string label(bool with_bits = true) const;
  // A short name of the configuration's family for plot keys: the method, rounding, clip rule
  // and granularity and one word per addition ("gptq mse row rows rot fisher"), no widths,
  // budgets or seeds (the full label is in the report's tables).
  std::string family() const;
};

}  // namespace lmquant
