#include "quant/quant_config.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>

#include "lm/matrices.h"
#include "quant/ocs.h"

namespace lmquant {

void QuantConfig::validate() const {
  if (method == Method::kFloat) return;
  UniformQuantizer check(bits, grid);
  if (method == Method::kOcs) {
    ocs_split_count(expand_ratio, 1);  // validates the range
    if (rotate)
      throw std::invalid_argument(
          "rotation spreads outliers over a row, OCS splits them off; "
          "rotate with --method clip, not ocs");
  } else if (expand_ratio != 0 || grid_aware || alpha_on_original) {
    throw std::invalid_argument("the OCS settings (expand ratio " + std::to_string(expand_ratio) +
                                ", grid-aware, α on the original matrix) apply to the ocs method "
                                "only, not to " +
                                to_string(method));
  }
  if (targets.empty()) throw std::invalid_argument("no targets to quantize");
  // Per-matrix settings name matrices of the table (which of them a model has is the plan's
  // check: quant/matrix_plan.h).
  for (const auto& kv : matrix_bits) parse_matrix_name(kv.first);
  for (const auto& kv : matrix_granularity) parse_matrix_name(kv.first);
  for (const auto& kv : matrix_row_budget) parse_matrix_name(kv.first);
  for (const auto& [name, b] : matrix_bits) {
    try {
      UniformQuantizer(b, grid);  // 2..16; midrise 1..7
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("bits for matrix " + name + ": " + e.what());
    }
  }
  if (grid == Grid::kMidrise) {
    if (grid_aware)
      throw std::invalid_argument(
          "grid-aware OCS splitting offsets the halves by a quarter step "
          "of the midtread grid; not with the midrise grid");
  }
  for (int b : row_widths)
    if (b > 0) UniformQuantizer(b, grid);  // midtread 2..8 (check_row_widths), midrise 1..7
  // Every granularity in use: the default and the per-matrix ones.
  std::vector<std::pair<std::string, Granularity>> grans{{"", granularity}};
  for (const auto& kv : matrix_granularity) grans.push_back(kv);
  auto of = [](const std::string& name) {
    return name.empty() ? std::string() : " (matrix " + name + ")";
  };
  for (const auto& [name, g] : grans) {
    if (g.kind == Granularity::Kind::kGroup && g.group < 1)
      throw std::invalid_argument("group size must be >= 1, got " + std::to_string(g.group) +
                                  of(name));
    if ((grid_aware || alpha_on_original) && g.kind == Granularity::Kind::kGroup)
      throw std::invalid_argument(
          "grid-aware OCS splitting and α on the original matrix need "
          "whole-row groups; not with " +
          to_string(g) + of(name));
  }
  if (rounding == Rounding::kGptq) {
    if (grid_aware)
      throw std::invalid_argument(
          "grid-aware OCS splitting is a rounding rule of its own; not "
          "with gptq rounding");
    if (calib_sequences < 1)
      throw std::invalid_argument("calibration needs at least 1 sequence, got " +
                                  std::to_string(calib_sequences));
    if (!(damp >= 0) || !std::isfinite(damp))
      throw std::invalid_argument("dampening must be a finite number >= 0, got " +
                                  std::to_string(damp));
    for (const auto& [name, g] : grans)
      if (alpha_by_output && g.kind != Granularity::Kind::kRow &&
          g.kind != Granularity::Kind::kGroup)
        throw std::invalid_argument(
            "choosing α by the output error picks a factor per row: it "
            "needs granularity row or group:G, not " +
            to_string(g) + of(name));
    if (fisher_decoder && gptq_decoder)
      throw std::invalid_argument(
          "the decoder is compensated against its logits (gptq-decoder) or against the output "
          "distribution (fisher-decoder); choose one");
    if (fisher_decoder && alpha_by_output)
      throw std::invalid_argument(
          "choosing α by the compensated output error uses one Hessian per matrix; not with the "
          "decoder's Hessian per row (fisher-decoder)");
    if (fisher_decoder && method == Method::kOcs)
      throw std::invalid_argument(
          "the decoder's Fisher Hessians are over its own inputs; not with OCS's duplicated "
          "inputs (use --method clip)");
  } else if (gptq_decoder || fisher_decoder || gptq_embedding || alpha_by_output) {
    throw std::invalid_argument(
        (alpha_by_output ? std::string("choosing α by the compensated output error")
                         : std::string("compensating the ") +
                               (gptq_decoder || fisher_decoder ? "decoder" : "embedding")) +
        " is a setting of gptq rounding; not with rounding " + to_string(rounding));
  }
  if (has_row_widths()) {
    check_row_widths(row_widths);
    if (bits_per_weight != 0 && !(bits_per_weight > 0 && std::isfinite(bits_per_weight)))
      throw std::invalid_argument("bits per weight must be a positive number, got " +
                                  std::to_string(bits_per_weight));
    if ((bits_per_weight == 0 || row_budget != 0) &&
        !(row_budget >= row_widths.front() && row_budget <= row_widths.back()))
      throw std::invalid_argument(
          "the row budget must lie between the narrowest and the widest "
          "row width (" +
          std::to_string(row_widths.front()) + ".." + std::to_string(row_widths.back()) +
          "), got " + std::to_string(row_budget));
    // The vocabulary matrices' granularity (those that get row widths).
    for (const auto& [name, g] : grans)
      if ((name.empty() || is_vocabulary(parse_matrix_name(name))) &&
          g.kind != Granularity::Kind::kRow && g.kind != Granularity::Kind::kGroup)
        throw std::invalid_argument(
            "row widths need a scale per row or per group (granularity "
            "row or group:G), not " +
            to_string(g) + of(name));
    for (const auto& [name, r] : matrix_row_budget)
      if (!(r >= row_widths.front() && r <= row_widths.back()))
        throw std::invalid_argument("the row budget of matrix " + name +
                                    " must lie between the narrowest and the widest row width (" +
                                    std::to_string(row_widths.front()) + ".." +
                                    std::to_string(row_widths.back()) + "), got " +
                                    std::to_string(r));
    if (grid_aware)
      throw std::invalid_argument(
          "grid-aware OCS splitting depends on the step, which row widths "
          "choose per row; not with row widths");
    std::set<double> seen;
    for (double f : row_alpha_factors)
      if (!(f > 0 && std::isfinite(f)) || !seen.insert(f).second)
        throw std::invalid_argument(
            "row α factors must be distinct positive numbers (e.g. 0.8,0.9,1,1.1), got " +
            std::to_string(f));
    if (!row_alpha_factors.empty() && method == Method::kOcs)
      throw std::invalid_argument(
          "OCS splits by the clip rule's α over the whole matrix; row α factors are not with "
          "the ocs method");
    if (calib_sequences < 1)
      throw std::invalid_argument("calibration needs at least 1 sequence, got " +
                                  std::to_string(calib_sequences));
  } else if (!row_alpha_factors.empty()) {
    throw std::invalid_argument(
        "row α factors choose each vocabulary row's α by its cost at its width: they need row "
        "widths (e.g. 1,2,3,4,7)");
  } else if (row_budget != 0 || !matrix_row_budget.empty()) {
    throw std::invalid_argument("a row budget needs row widths (e.g. 2,3,4,8)");
  } else if (bits_per_weight != 0) {
    throw std::invalid_argument(
        "a size in bits per weight is met by solving the row budget: it needs row widths (e.g. "
        "1,2,3,4,7)");
  }
  if (repeat < 0) throw std::invalid_argument("repeat must be >= 0, got " + std::to_string(repeat));
}

bool QuantConfig::needs_calibration() const {
  return method != Method::kFloat &&
         (rounding == Rounding::kGptq || has_row_widths() || refit_decoder_bias);
}

QuantConfig QuantConfig::from_json(const nlohmann::json& j) {
  // Every field to_json writes (now or in an earlier version); anything else is an error.
  static const std::set<std::string> kFields = {"method",
                                                "bits",
                                                "clip",
                                                "granularity",
                                                "targets",
                                                "expand_ratio",
                                                "grid_aware",
                                                "alpha_on",
                                                "matrix_bits",
                                                "matrix_granularity",
                                                "grid",
                                                "half_scales",
                                                "rotate",
                                                "rotation_seed",
                                                "rounding",
                                                "calib_sequences",
                                                "damp",
                                                "order",
                                                "gptq_decoder",
                                                "gptq_embedding",
                                                "fisher_decoder",
                                                "alpha_by_output",
                                                "refit_decoder_bias",
                                                "row_widths",
                                                "row_budget",
                                                "bits_per_weight",
                                                "matrix_row_budget",
                                                "row_sensitivity",
                                                "row_alpha_factors",
                                                "repeat"};
  if (!j.is_object()) throw std::invalid_argument("a quantization config is a JSON object");
  for (const auto& [key, value] : j.items())
    if (!kFields.count(key))
      throw std::invalid_argument("unknown quantization setting '" + key + "'");
  QuantConfig q;
  q.method = parse_method(j.value("method", "float"));
  if (q.method == Method::kFloat) return q;
  q.bits = j.at("bits").get<int>();
  q.clip = ClipRule::parse(j.at("clip").get<std::string>());
  q.granularity = parse_granularity(j.at("granularity").get<std::string>());
  q.targets = parse_targets(j.at("targets").get<std::string>());
  if (q.method == Method::kOcs) {
    q.expand_ratio = j.at("expand_ratio").get<double>();
    q.grid_aware = j.value("grid_aware", false);
    q.alpha_on_original = j.value("alpha_on", "split") == "original";
  }
  if (j.contains("matrix_bits"))
    for (const auto& [name, b] : j.at("matrix_bits").items()) q.matrix_bits[name] = b.get<int>();
  if (j.contains("matrix_granularity"))
    for (const auto& [name, g] : j.at("matrix_granularity").items())
      q.matrix_granularity[name] = parse_granularity(g.get<std::string>());
  q.grid = parse_grid(j.value("grid", "midtread"));  // records before the setting: midtread
  q.half_scales = j.value("half_scales", false);
  q.rotate = j.value("rotate", false);
  if (q.rotate) q.rotation_seed = j.value("rotation_seed", uint64_t{1});
  q.rounding = parse_rounding(j.value("rounding", "nearest"));
  if (q.rounding == Rounding::kGptq) {
    q.calib_sequences = j.value("calib_sequences", int64_t{512});
    q.damp = j.value("damp", 0.01);
    q.gptq_order = parse_gptq_order(j.value("order", "diag"));
    // Records written before the setting existed (lmquant < 0.3) compensated the decoder.
    q.gptq_decoder = j.value("gptq_decoder", true);
    q.gptq_embedding = j.value("gptq_embedding", false);
    q.fisher_decoder = j.value("fisher_decoder", false);
    q.alpha_by_output = j.value("alpha_by_output", false);
  }
  q.refit_decoder_bias = j.value("refit_decoder_bias", false);
  if (q.refit_decoder_bias) q.calib_sequences = j.value("calib_sequences", int64_t{512});
  if (j.contains("row_widths")) {
    q.row_widths = j.at("row_widths").get<std::vector<int>>();
    q.bits_per_weight = j.value("bits_per_weight", 0.0);
    q.row_budget =
        q.bits_per_weight > 0 ? j.value("row_budget", 0.0) : j.at("row_budget").get<double>();
    if (j.contains("matrix_row_budget"))
      for (const auto& [name, r] : j.at("matrix_row_budget").items())
        q.matrix_row_budget[name] = r.get<double>();
    q.row_sensitivity = parse_row_sensitivity(j.value("row_sensitivity", "output"));
    q.row_alpha_factors = j.value("row_alpha_factors", std::vector<double>{});
    q.calib_sequences = j.value("calib_sequences", int64_t{512});
  }
  q.repeat = j.value("repeat", 0);
  q.validate();
  return q;
}

int QuantConfig::bits_for(const std::string& matrix) const {
  const auto it = matrix_bits.find(matrix);
  return it == matrix_bits.end() ? bits : it->second;
}

Granularity QuantConfig::granularity_for(const std::string& matrix) const {
  const auto it = matrix_granularity.find(matrix);
  return it == matrix_granularity.end() ? granularity : it->second;
}

double QuantConfig::row_budget_for(const std::string& matrix) const {
  const auto it = matrix_row_budget.find(matrix);
  return it == matrix_row_budget.end() ? row_budget : it->second;
}

bool QuantConfig::operator==(const QuantConfig& o) const { return to_json() == o.to_json(); }

nlohmann::json QuantConfig::to_json() const {
  if (method == Method::kFloat) return {{"method", "float"}};
  nlohmann::json j = {{"method", to_string(method)},
                      {"bits", bits},
                      {"clip", clip.to_string()},
                      {"granularity", to_string(granularity)},
                      {"targets", to_string(targets)}};
  if (method == Method::kOcs) {
    j["expand_ratio"] = expand_ratio;
    j["grid_aware"] = grid_aware;
    j["alpha_on"] = alpha_on_original ? "original" : "split";
  }
  if (!matrix_bits.empty()) j["matrix_bits"] = matrix_bits;
  if (!matrix_granularity.empty()) {
    nlohmann::json g = nlohmann::json::object();
    for (const auto& [name, gr] : matrix_granularity) g[name] = to_string(gr);
    j["matrix_granularity"] = g;
  }
  if (grid != Grid::kMidtread) j["grid"] = to_string(grid);
  if (half_scales) j["half_scales"] = true;
  if (rotate) {
    j["rotate"] = true;
    j["rotation_seed"] = rotation_seed;
  }
  if (rounding == Rounding::kGptq) {
    j["rounding"] = "gptq";
    j["calib_sequences"] = calib_sequences;
    j["damp"] = damp;
    j["order"] = to_string(gptq_order);
    j["gptq_decoder"] = gptq_decoder;
    if (gptq_embedding) j["gptq_embedding"] = true;
    if (fisher_decoder) j["fisher_decoder"] = true;
    if (alpha_by_output) j["alpha_by_output"] = true;
  }
  if (has_row_widths()) {
    j["row_widths"] = row_widths;
    j["row_budget"] = row_budget;
    if (bits_per_weight > 0) j["bits_per_weight"] = bits_per_weight;
    if (!matrix_row_budget.empty()) j["matrix_row_budget"] = matrix_row_budget;
    j["row_sensitivity"] = to_string(row_sensitivity);
    if (!row_alpha_factors.empty()) j["row_alpha_factors"] = row_alpha_factors;
    j["calib_sequences"] = calib_sequences;
  }
  if (refit_decoder_bias) {
    j["refit_decoder_bias"] = true;
    j["calib_sequences"] = calib_sequences;
  }
  if (repeat > 0) j["repeat"] = repeat;
  return j;
}

std::string QuantConfig::label(bool with_bits) const {
  if (method == Method::kFloat) return "float";
  char r[32];
  std::snprintf(r, sizeof r, "%g", expand_ratio);
  std::string s = method == Method::kOcs ? std::string("ocs r=") + r + " " : "";
  if (rounding == Rounding::kGptq) s += "gptq ";
  s += clip.to_string() + " " + (with_bits ? std::to_string(bits) + "b " : "") +
       to_string(granularity);
  if (grid != Grid::kMidtread) s += " " + to_string(grid);
  if (half_scales && granularity.kind != Granularity::Kind::kGroup) s += " f16";
  if (rotate) s += rotation_seed == 1 ? " rot" : " rot=" + std::to_string(rotation_seed);
  for (const auto& [name, b] : matrix_bits) s += " " + name + "=" + std::to_string(b) + "b";
  for (const auto& [name, g] : matrix_granularity) s += " " + name + "=" + to_string(g);
  if (has_row_widths()) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", row_budget);
    s += " rows{";
    for (size_t i = 0; i < row_widths.size(); ++i)
      s += (i ? "," : "") + std::to_string(row_widths[i]);
    s += "}";
    if (with_bits && row_budget > 0) s += std::string("@") + b;  // this family's bits
    if (bits_per_weight > 0) {
      std::snprintf(b, sizeof b, "%g", bits_per_weight);
      s += std::string(" =") + b + "b/w";
    }
    for (const auto& [name, r] : matrix_row_budget) {
      std::snprintf(b, sizeof b, "%g", r);
      s += " " + name + "@" + b;
    }
    if (row_sensitivity != RowSensitivity::kOutput) s += " " + to_string(row_sensitivity);
    if (!row_alpha_factors.empty()) {
      s += " α-rows{";
      for (size_t i = 0; i < row_alpha_factors.size(); ++i) {
        std::snprintf(b, sizeof b, "%g", row_alpha_factors[i]);
        s += (i ? "," : "") + std::string(b);
      }
      s += "}";
    }
  }
  if (grid_aware) s += " grid";
  if (alpha_on_original) s += " α-orig";
  if (rounding == Rounding::kGptq) {
    char d[32];
    std::snprintf(d, sizeof d, "%g", damp);
    if (damp != 0.01) s += std::string(" damp=") + d;
    if (gptq_order != GptqOrder::kDiagonal) s += " " + to_string(gptq_order);
    if (gptq_decoder) s += " +decoder";
    if (fisher_decoder) s += " +decoder(fisher)";
    if (gptq_embedding) s += " +embedding";
    if (alpha_by_output) s += " α-out";
  }
  if (refit_decoder_bias) s += " +bias(refit)";
  if (needs_calibration() && calib_sequences != 512)
    s += " calib=" + std::to_string(calib_sequences);
  if (repeat > 0) s += " rep" + std::to_string(repeat);
  return s;
}

std::string QuantConfig::family() const {
  if (method == Method::kFloat) return "float";
  std::string s = method == Method::kOcs ? "ocs " : "";
  if (rounding == Rounding::kGptq) s += "gptq ";
  s += clip.to_string() + " " + to_string(granularity);
  if (has_row_widths()) s += " rows";
  if (rotate) s += " rot";
  if (fisher_decoder) s += " fisher";
  if (gptq_decoder) s += " +dec";
  if (gptq_embedding) s += " +emb";
  if (alpha_by_output) s += " α-out";
  if (!row_alpha_factors.empty()) s += " α-rows";
  if (refit_decoder_bias) s += " bias";
  if (!matrix_bits.empty() || !matrix_granularity.empty() || !matrix_row_budget.empty())
    s += " mixed";
  return s;
}

}  // namespace lmquant
