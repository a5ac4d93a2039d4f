// The plan of one quantization: for every targeted matrix what will be done to it — its
// objective (quant/objective.h) and so its rounding, its width (one, or one per row), its scale
// granularity, whether it is rotated, how its rows' widths are allocated — and which settings of
// the configuration do not apply to it, and why.
//
// quantize_model (quant/quantize_model.h) executes the plan; each matrix's report
// (quant/matrix_report.h) carries its plan, and the record's configuration is the applied one
// (applied_config): a setting that applied to no matrix is dropped from it, so the label never
// claims what did not run. Example: `--targets embedding,decoder --rounding gptq` compensates
// nothing on an untied model (the embedding has no inputs, the decoder needs fisher_decoder or
// gptq_decoder): each matrix's plan says so, and the label has no "gptq".
#pragma once
#include <string>
#include <vector>

#include "lm/matrices.h"
#include "quant/objective.h"
#include "quant/quant_config.h"

namespace lmquant {

struct MatrixPlan {
  NamedMatrix matrix;
  Objective objective = Objective::kWeight;
  int bits = 0;             // QuantConfig::bits_for; with row widths the widest
  bool row_widths = false;  // a width per row (quant/row_widths.h)
  double row_budget = 0;    // with row widths: the rows' mean width at most
  // With row widths, how a row's cost at each width is measured (quant/row_widths.h):
  // "fisher" (the decoder's softmax Fisher), "tied" (the tied objective, quant/tied_objective.h),
  // "feed" (frequency × ‖W_ih δ‖², the untied embedding), "frequency" (frequency × ‖δ‖²). Empty
  // without row widths.
  std::string sensitivity;
  Granularity granularity;
  bool rotated = false;
  bool alpha_by_output = false;  // each row's α chosen by the compensated output error
  // With row widths: each row's α at each width chosen by the row's cost there
  // (QuantConfig::row_alpha_factors, quant/row_alpha.h).
  bool row_alpha = false;
  // "SETTING: why" for each setting of the configuration that did not apply to this matrix.
  std::vector<std::string> not_applied;

  Rounding rounding() const {
    return compensated(objective) ? Rounding::kGptq : Rounding::kNearest;
  }
  // "5" or, with row widths, "rows{1,2,3,4,7}@2.2".
  std::string widths(const QuantConfig& config) const;
};

// Whether matrix m's rows get widths of their own under `config`: row widths are set and m is a
// vocabulary matrix (embedding, decoder or the tied one) without a matrix_bits entry.
bool has_row_widths(const NamedMatrix& m, const QuantConfig& config);

// The plan of every matrix `config` targets in a model of `model`, in the matrix table's order.
// Throws std::invalid_argument when a per-matrix setting names a matrix the model lacks (listing
// its matrices) or gives a row budget to a matrix without row widths.
std::vector<MatrixPlan> plan_matrices(const LstmLmConfig& model, const QuantConfig& config);

// `config` with every setting that applied to no matrix of `plans` reset to its default:
// gptq rounding when no matrix was compensated, gptq_decoder / fisher_decoder / gptq_embedding
// / alpha_by_output / row_alpha_factors when no matrix took them, row_sensitivity output when no
// row was measured by the decoder's Fisher. What the record of the quantization says was done.
QuantConfig applied_config(const QuantConfig& config, const std::vector<MatrixPlan>& plans);

}  // namespace lmquant
