#include "quant/size_accounting.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "lm/matrices.h"
#include "quant/matrix_plan.h"

namespace lmquant {

double predicted_size_bits(const LstmLmImpl& model, const QuantConfig& cfg) {
  if (cfg.method == Method::kOcs)
    throw std::invalid_argument("predicted size: not for OCS configurations");
  const auto& mc = model.config();
  double bits = 32.0 * static_cast<double>(stored_parameter_count(model));
  if (cfg.method == Method::kFloat) return bits;
  for (const auto& m : targeted_matrices(mc, cfg.targets)) {
    const auto& w = m.weight(model);
    const int64_t rows = w.size(0), cols = w.size(1);
    const Granularity gran = cfg.granularity_for(m.name);
    const auto groups = static_cast<int64_t>(groups_of(rows, cols, gran, m.gated).size());
    const double n = static_cast<double>(rows * cols);
    bits -= 32.0 * n;
    bits += scale_bits(gran, cfg.half_scales) * static_cast<double>(groups);
    if (cfg.rotate) bits += 64;  // the rotation's seed
    if (has_row_widths(m, cfg))
      bits += cfg.row_budget_for(m.name) * n +
              width_tag_bits(cfg.row_widths) * static_cast<double>(rows);
    else
      bits += cfg.bits_for(m.name) * n;
  }
  return bits;
}

double row_budget_for_size(const LstmLmImpl& model, QuantConfig cfg, double size_bits) {
  if (!cfg.has_row_widths()) throw std::invalid_argument("row budget: no row widths set");
  // Linear in the budget: size = a + b · budget.
  cfg.row_budget = 0;
  const double a = predicted_size_bits(model, cfg);
  cfg.row_budget = 1;
  const double b = predicted_size_bits(model, cfg) - a;
  if (b == 0)
    throw std::invalid_argument("row budget: every row-width matrix has a budget of its own");
  return (size_bits - a) / b;
}

std::pair<double, double> reachable_bits_per_weight(const LstmLmImpl& model,
                                                    const QuantConfig& cfg) {
  if (!cfg.has_row_widths())
    throw std::invalid_argument("a size in bits per weight needs row widths to solve a row budget");
  QuantConfig c = cfg;
  const double n = static_cast<double>(stored_parameter_count(model));
  c.row_budget = cfg.row_widths.front();
  const double lo = predicted_size_bits(model, c) / n;
  c.row_budget = cfg.row_widths.back();
  return {lo, predicted_size_bits(model, c) / n};
}

double row_budget_for_bits_per_weight(const LstmLmImpl& model, const QuantConfig& cfg,
                                      double bits_per_weight) {
  const auto [lo, hi] = reachable_bits_per_weight(model, cfg);
  const double n = static_cast<double>(stored_parameter_count(model));
  const double budget = row_budget_for_size(model, cfg, bits_per_weight * n);
  char msg[256];
  std::snprintf(msg, sizeof msg,
                "%g bits per weight is out of reach of this configuration on this model: with "
                "rows of %d to %d bits it takes %.4f to %.4f bits per weight",
                bits_per_weight, cfg.row_widths.front(), cfg.row_widths.back(), lo, hi);
  // A hair of tolerance for T typed as the printed end of the range.
  const double eps = 1e-9 * (cfg.row_widths.back() - cfg.row_widths.front());
  if (!(budget >= cfg.row_widths.front() - eps && budget <= cfg.row_widths.back() + eps))
    throw std::invalid_argument(msg);
  return std::clamp<double>(budget, cfg.row_widths.front(), cfg.row_widths.back());
}

double stored_bits_change(const MatrixReport& r, const QuantizedMatrix& q, const QuantConfig& cfg) {
  // Codes at their widths (each row's with row widths, plus the bits naming its width), the
  // steps, minus the float weights they replace.
  const double width = static_cast<double>(r.params_after) / r.rows;
  const double code_bits = q.row_bits.defined()
                               ? q.row_bits.to(torch::kDouble).sum().item<double>() * width +
                                     width_tag_bits(cfg.row_widths) * static_cast<double>(r.rows)
                               : cfg.bits_for(r.name) * static_cast<double>(r.params_after);
  return code_bits - 32.0 * r.params_before + (q.rotation.defined() ? 64.0 : 0.0) +
         scale_bits(cfg.granularity_for(r.name), cfg.half_scales) * static_cast<double>(r.groups);
}

}  // namespace lmquant
