#include "quant/matrix_plan.h"

#include <cstdio>
#include <stdexcept>

namespace lmquant {
namespace {

bool untied_embedding(const NamedMatrix& m) { return m.kind == MatrixKind::kEmbedding && !m.tied; }
bool untied_decoder(const NamedMatrix& m) { return m.kind == MatrixKind::kDecoder && !m.tied; }

// The objective of one matrix and the notes on what was asked of it and did not apply.
Objective objective_of(const NamedMatrix& m, const QuantConfig& cfg,
                       std::vector<std::string>& not_applied) {
  const bool gptq = cfg.rounding == Rounding::kGptq;
  if (!gptq) return Objective::kWeight;
  if (m.tied) {
    const bool tied_objective = cfg.fisher_decoder || cfg.gptq_embedding;
    if (cfg.gptq_decoder)
      not_applied.push_back(
          "gptq_decoder: the tied matrix is rounded against the tied objective (fisher_decoder "
          "or gptq_embedding), not against its logits alone");
    if (tied_objective && cfg.method == Method::kOcs) {
      not_applied.push_back(
          "fisher_decoder/gptq_embedding: the tied objective's per-row Hessians are over the "
          "unwidened inputs; not with OCS; rounded to nearest");
      return Objective::kWeight;
    }
    if (tied_objective) return Objective::kTied;
    not_applied.push_back(
        "rounding gptq: the tied matrix is rounded to nearest unless fisher_decoder or "
        "gptq_embedding rounds it against the tied objective");
    return Objective::kWeight;
  }
  if (untied_embedding(m)) {
    if (cfg.gptq_embedding) return Objective::kFeed;
    not_applied.push_back(
        "rounding gptq: the embedding is a lookup with no inputs to compensate with; rounded to "
        "nearest (gptq_embedding rounds it against W_ih)");
    return Objective::kWeight;
  }
  if (untied_decoder(m)) {
    if (cfg.fisher_decoder) return Objective::kFisher;
    if (cfg.gptq_decoder) return Objective::kInputs;
    not_applied.push_back(
        "rounding gptq: the decoder is rounded to nearest unless fisher_decoder or gptq_decoder "
        "is set");
    return Objective::kWeight;
  }
  return Objective::kInputs;  // W_ih, W_hh
}

}  // namespace

std::string MatrixPlan::widths(const QuantConfig& cfg) const {
  if (!row_widths) return std::to_string(bits);
  std::string s = "rows{";
  for (size_t i = 0; i < cfg.row_widths.size(); ++i)
    s += (i ? "," : "") + std::to_string(cfg.row_widths[i]);
  char b[32];
  std::snprintf(b, sizeof b, "%g", row_budget);
  return s + "}@" + b;
}

bool has_row_widths(const NamedMatrix& m, const QuantConfig& cfg) {
  return cfg.has_row_widths() && cfg.matrix_bits.count(m.name) == 0 &&
         (m.kind == MatrixKind::kEmbedding || m.kind == MatrixKind::kDecoder);
}

std::vector<MatrixPlan> plan_matrices(const LstmLmConfig& mc, const QuantConfig& cfg) {
  for (const auto& kv : cfg.matrix_bits) find_matrix(mc, kv.first);  // throws listing the names
  for (const auto& kv : cfg.matrix_granularity) find_matrix(mc, kv.first);
  for (const auto& kv : cfg.matrix_row_budget)
    if (!has_row_widths(find_matrix(mc, kv.first), cfg))
      throw std::invalid_argument("a row budget for matrix " + kv.first +
                                  ", which has no row widths (only the embedding and the "
                                  "decoder without a --matrix-bits entry have)");
  std::vector<MatrixPlan> plans;
  if (cfg.method == Method::kFloat) return plans;
  for (const auto& m : targeted_matrices(mc, cfg.targets)) {
    MatrixPlan p;
    p.matrix = m;
    p.objective = objective_of(m, cfg, p.not_applied);
    p.row_widths = has_row_widths(m, cfg);
    p.bits = p.row_widths ? cfg.row_widths.back() : cfg.bits_for(m.name);
    p.granularity = cfg.granularity_for(m.name);
    p.rotated = cfg.rotate;
    if (cfg.alpha_by_output) {
      p.alpha_by_output = p.objective == Objective::kInputs || p.objective == Objective::kFeed;
      if (!p.alpha_by_output)
        p.not_applied.push_back(
            "alpha_by_output: this matrix is not compensated with one "
            "Hessian; its α is the clip rule's");
    }
    if (p.row_widths && !cfg.row_alpha_factors.empty()) {
      p.row_alpha = true;
      if (p.alpha_by_output) {
        p.alpha_by_output = false;
        p.not_applied.push_back(
            "alpha_by_output: this matrix's rows choose their α by their cost at their width "
            "(row_alpha_factors)");
      }
    } else if (!cfg.row_alpha_factors.empty() && is_vocabulary(m)) {
      p.not_applied.push_back(
          "row_alpha_factors: this matrix has no row widths (a matrix_bits entry); its α is the "
          "clip rule's");
    }
    if (p.row_widths) {
      p.row_budget = cfg.row_budget_for(m.name);
      const bool output = cfg.row_sensitivity == RowSensitivity::kOutput;
      if (untied_decoder(m) && output)
        p.sensitivity = "fisher";
      else if (m.tied && output)
        p.sensitivity = "tied";
      else if (untied_embedding(m))
        p.sensitivity = "feed";
      else
        p.sensitivity = "frequency";
    }
    plans.push_back(std::move(p));
  }
  return plans;
}

QuantConfig applied_config(const QuantConfig& cfg, const std::vector<MatrixPlan>& plans) {
  if (cfg.method == Method::kFloat) return cfg;
  QuantConfig a = cfg;
  auto any = [&](auto pred) {
    for (const auto& p : plans)
      if (pred(p)) return true;
    return false;
  };
  const bool inputs_decoder = any([](const MatrixPlan& p) {
    return p.objective == Objective::kInputs && untied_decoder(p.matrix);
  });
  if (!inputs_decoder) a.gptq_decoder = false;
  // On a tied model the tied objective is what fisher_decoder and gptq_embedding ask for.
  const bool tied = any([](const MatrixPlan& p) { return p.objective == Objective::kTied; });
  if (!tied && !any([](const MatrixPlan& p) { return p.objective == Objective::kFisher; }))
    a.fisher_decoder = false;
  if (!tied && !any([](const MatrixPlan& p) { return p.objective == Objective::kFeed; }))
    a.gptq_embedding = false;
  if (!any([](const MatrixPlan& p) { return p.alpha_by_output; })) a.alpha_by_output = false;
  if (!any([](const MatrixPlan& p) { return p.row_alpha; })) a.row_alpha_factors.clear();
  if (!any([](const MatrixPlan& p) { return compensated(p.objective); })) {
    a.rounding = Rounding::kNearest;
    a.gptq_decoder = a.fisher_decoder = a.gptq_embedding = a.alpha_by_output = false;
    const QuantConfig defaults;
    a.damp = defaults.damp;
    a.gptq_order = defaults.gptq_order;
    if (!a.has_row_widths() && !a.refit_decoder_bias) a.calib_sequences = defaults.calib_sequences;
  }
  if (a.has_row_widths() && a.row_sensitivity == RowSensitivity::kOutput &&
      !any(
          [](const MatrixPlan& p) { return p.sensitivity == "fisher" || p.sensitivity == "tied"; }))
    a.row_sensitivity = RowSensitivity::kFrequency;
  return a;
}

}  // namespace lmquant
