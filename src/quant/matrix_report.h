// One quantized matrix's report: its shape, widths, α, errors, accounting and the plan executed
// on it (quant/matrix_plan.h). A record (report/record.h) holds one per quantized matrix.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lmquant {

struct MatrixReport {
  std::string name;  // "recurrent.l0" (lm/matrices.h)
  int bits = 0;      // its bit width (QuantConfig::bits_for); with row widths the widest
  // With row widths: the mean width over rows and how many rows have each width ({} else).
  double mean_bits = 0;
  std::map<int, int64_t> rows_at_bits;
  // With row α factors (QuantConfig::row_alpha_factors): how many rows took each factor ("%g")
  // at their width; 0-bit rows are not counted ({} else).
  std::map<std::string, int64_t> rows_at_alpha_factor;
  int64_t rows = 0, cols = 0;
  int64_t split_channels = 0;
  double max_abs_before = 0, max_abs_after = 0;  // max|W|, max|W'|
  double alpha = 0;                              // the α (tensor) or the mean α over groups
  double alpha_min = 0, alpha_max = 0;
  int64_t groups = 0;
  double mse = 0;               // mean (W - Ŵ)² over the original weights (Ŵ folded)
  double sqnr_db = 0;           // 10 log10(Σ W² / Σ (W - Ŵ)²)
  double clipped_fraction = 0;  // fraction of W' entries with |w'| > α of their group
  int64_t params_before = 0, params_after = 0;  // weights stored
  int64_t macs_before = 0, macs_after = 0;      // multiply-adds per token
  // The plan executed on the matrix (quant/matrix_plan.h): its objective and rounding, its
  // widths ("5" or "rows{1,2,3,4,7}@2.2"), granularity, rotation, the row widths' sensitivity,
  // and each setting of the configuration that did not apply to it, with why. Records written
  // before lmquant 0.4 have no plan (empty objective).
  std::string objective, rounding, widths, granularity, sensitivity;
  bool rotated = false;
  std::vector<std::string> not_applied;
  nlohmann::json to_json() const;
  static MatrixReport from_json(const nlohmann::json& j);
  nlohmann::json rows_at_bits_json() const;  // {"2": rows, "4": rows, ...}
};

}  // namespace lmquant
