#include "quant/matrix_report.h"

#include <cmath>

namespace lmquant {

nlohmann::json MatrixReport::to_json() const {
  nlohmann::json j = {{"name", name},
                      {"bits", bits},
                      {"shape", {rows, cols}},
                      {"split_channels", split_channels},
                      {"max_abs", max_abs_before},
                      {"max_abs_before", max_abs_before},
                      {"max_abs_after", max_abs_after},
                      {"alpha", alpha},
                      {"alpha_min", alpha_min},
                      {"alpha_max", alpha_max},
                      {"groups", groups},
                      {"mse", mse},
                      {"sqnr_db", sqnr_db},
                      {"clipped_fraction", clipped_fraction},
                      {"mean_bits", mean_bits > 0 ? mean_bits : static_cast<double>(bits)},
                      {"rows_at_bits", rows_at_bits_json()},
                      {"params_before", params_before},
                      {"params_after", params_after},
                      {"params_overhead", params_after - params_before},
                      {"macs_before", macs_before},
                      {"macs_after", macs_after},
                      {"macs_overhead", macs_after - macs_before}};
  if (!rows_at_alpha_factor.empty()) j["rows_at_alpha_factor"] = rows_at_alpha_factor;
  if (!objective.empty()) {
    j["plan"] = {{"objective", objective}, {"rounding", rounding},
                 {"widths", widths},       {"granularity", granularity},
                 {"rotated", rotated},     {"not_applied", not_applied}};
    if (!sensitivity.empty()) j["plan"]["sensitivity"] = sensitivity;
  }
  return j;
}

nlohmann::json MatrixReport::rows_at_bits_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [b, n] : rows_at_bits) j[std::to_string(b)] = n;
  return j;
}

MatrixReport MatrixReport::from_json(const nlohmann::json& j) {
  MatrixReport r;
  r.name = j.at("name").get<std::string>();
  r.bits = j.value("bits", 0);
  r.rows = j.at("shape").at(0).get<int64_t>();
  r.cols = j.at("shape").at(1).get<int64_t>();
  r.split_channels = j.value("split_channels", int64_t{0});
  r.max_abs_before = j.value("max_abs_before", 0.0);
  r.max_abs_after = j.value("max_abs_after", 0.0);
  r.alpha = j.value("alpha", 0.0);
  r.alpha_min = j.value("alpha_min", 0.0);
  r.alpha_max = j.value("alpha_max", 0.0);
  r.groups = j.value("groups", int64_t{0});
  r.mse = j.value("mse", 0.0);
  // JSON has no infinity: nlohmann writes a lossless matrix's ∞ dB as null.
  r.sqnr_db =
      j.contains("sqnr_db") && j["sqnr_db"].is_number() ? j["sqnr_db"].get<double>() : INFINITY;
  r.clipped_fraction = j.value("clipped_fraction", 0.0);
  r.mean_bits = j.value("mean_bits", static_cast<double>(r.bits));
  if (j.contains("rows_at_bits"))
    for (const auto& [b, n] : j.at("rows_at_bits").items())
      r.rows_at_bits[std::stoi(b)] = n.get<int64_t>();
  if (j.contains("rows_at_alpha_factor"))
    r.rows_at_alpha_factor = j.at("rows_at_alpha_factor").get<std::map<std::string, int64_t>>();
  r.params_before = j.value("params_before", int64_t{0});
  r.params_after = j.value("params_after", int64_t{0});
  r.macs_before = j.value("macs_before", int64_t{0});
  r.macs_after = j.value("macs_after", int64_t{0});
  if (j.contains("plan")) {
    const auto& p = j.at("plan");
    r.objective = p.at("objective").get<std::string>();
    r.rounding = p.at("rounding").get<std::string>();
    r.widths = p.at("widths").get<std::string>();
    r.granularity = p.at("granularity").get<std::string>();
    r.rotated = p.at("rotated").get<bool>();
    r.sensitivity = p.value("sensitivity", std::string());
    r.not_applied = p.at("not_applied").get<std::vector<std::string>>();
  }
  return r;
}

}  // namespace lmquant
