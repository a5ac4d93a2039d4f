#include "quant/quantize_model.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <random>
#include <stdexcept>

#include "lm/matrices.h"
#include "quant/rotation.h"
#include "quant/uniform_quantizer.h"

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
    UniformQuantizer(b, grid);  // midtread 2..8 (check_row_widths), midrise 1..7
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
    if (!(row_budget >= row_widths.front() && row_budget <= row_widths.back()))
      throw std::invalid_argument(
          "the row budget must lie between the narrowest and the widest "
          "row width (" +
          std::to_string(row_widths.front()) + ".." + std::to_string(row_widths.back()) +
          "), got " + std::to_string(row_budget));
    // The vocabulary matrices' granularity (those that get row widths).
    for (const auto& [name, g] : grans)
      if ((name.empty() || name == "embedding" || name == "decoder" ||
           name == "embedding+decoder") &&
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
    if (calib_sequences < 1)
      throw std::invalid_argument("calibration needs at least 1 sequence, got " +
                                  std::to_string(calib_sequences));
  } else if (row_budget != 0 || !matrix_row_budget.empty()) {
    throw std::invalid_argument("a row budget needs row widths (e.g. 2,3,4,8)");
  }
  if (repeat < 0) throw std::invalid_argument("repeat must be >= 0, got " + std::to_string(repeat));
}

bool QuantConfig::needs_calibration() const {
  return method != Method::kFloat && (rounding == Rounding::kGptq || has_row_widths());
}

QuantConfig QuantConfig::from_json(const nlohmann::json& j) {
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
  if (j.contains("row_widths")) {
    q.row_widths = j.at("row_widths").get<std::vector<int>>();
    q.row_budget = j.at("row_budget").get<double>();
    if (j.contains("matrix_row_budget"))
      for (const auto& [name, r] : j.at("matrix_row_budget").items())
        q.matrix_row_budget[name] = r.get<double>();
    q.row_sensitivity = parse_row_sensitivity(j.value("row_sensitivity", "output"));
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
    if (!matrix_row_budget.empty()) j["matrix_row_budget"] = matrix_row_budget;
    j["row_sensitivity"] = to_string(row_sensitivity);
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
    if (with_bits) s += std::string("@") + b;  // the budget is this family's bits
    for (const auto& [name, r] : matrix_row_budget) {
      std::snprintf(b, sizeof b, "%g", r);
      s += " " + name + "@" + b;
    }
    if (row_sensitivity != RowSensitivity::kOutput) s += " " + to_string(row_sensitivity);
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
  if (needs_calibration() && calib_sequences != 512)
    s += " calib=" + std::to_string(calib_sequences);
  if (repeat > 0) s += " rep" + std::to_string(repeat);
  return s;
}

nlohmann::json MatrixReport::to_json() const {
  return {{"name", name},
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
  r.params_before = j.value("params_before", int64_t{0});
  r.params_after = j.value("params_after", int64_t{0});
  r.macs_before = j.value("macs_before", int64_t{0});
  r.macs_after = j.value("macs_after", int64_t{0});
  return r;
}

namespace {

// Every weight's step [rows, width] from one step per group of `group_size` columns of a row
// (step [rows] or [rows, groups per row]).
torch::Tensor steps_per_weight(const torch::Tensor& step, int64_t group_size, int64_t rows,
                               int64_t width) {
  auto s = step.dim() == 1 ? step.unsqueeze(1) : step;
  if (s.size(1) == 1) return s.expand({rows, width});
  return s.repeat_interleave(group_size, 1).narrow(1, 0, width);
}

// Ŵ (rows x cols, the model's input basis) from Ŵ' in the codes' basis: OCS halves folded back
// onto their sources, or a rotation Q undone (Ŵ_Q Qᵀ).
torch::Tensor to_input_basis(const torch::Tensor& deq, const OcsPlan& plan,
                             const torch::Tensor& rot) {
  if (rot.defined()) return deq.mm(rot.t());
  return plan.splits() > 0 ? fold_ocs(deq, plan) : deq;
}

}  // namespace

torch::Tensor QuantizedMatrix::step_per_weight() const {
  return steps_per_weight(step, group_size, codes.size(0), codes.size(1));
}

torch::Tensor QuantizedMatrix::dequantized() const {
  return to_input_basis(codes.to(torch::kFloat) * step_per_weight(), plan, rotation);
}

namespace {

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
    for (size_t r = 0; r < row_bits.size(); ++r)
      q[static_cast<int64_t>(r)][0] =
          static_cast<float>(UniformQuantizer(row_bits[r], grid).qmax());
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

// A quantization group: rows [r0, r1) × columns [c0, c1) of W'.
struct Group {
  int64_t r0, r1, c0, c1;
};

std::vector<Group> groups_of(int64_t rows, int64_t width, Granularity g, bool gated) {
  std::vector<Group> out;
  switch (g.kind) {
    case Granularity::Kind::kRow:
      for (int64_t r = 0; r < rows; ++r) out.push_back({r, r + 1, 0, width});
      break;
    case Granularity::Kind::kGroup:
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < width; c += g.group)
          out.push_back({r, r + 1, c, std::min(width, c + g.group)});
      break;
    case Granularity::Kind::kGate:
      if (gated && rows % 4 == 0) {
        for (int64_t k = 0; k < 4; ++k) out.push_back({k * rows / 4, (k + 1) * rows / 4, 0, width});
        break;
      }
      [[fallthrough]];
    case Granularity::Kind::kTensor:
      out.push_back({0, rows, 0, width});
  }
  return out;
}

Prepared prepare_matrix(const NamedMatrix& m, const torch::Tensor& w_in, const QuantConfig& cfg,
                        double alpha_factor = 1.0) {
  Prepared p;
  p.matrix = &m;
  p.bits = cfg.bits_for(m.name);
  p.grid = cfg.grid;
  const UniformQuantizer quantizer(p.bits, p.grid);
  p.w = w_in.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t rows = p.w.size(0), cols = p.w.size(1);
  p.q.name = m.name;
  const bool ocs = cfg.method == Method::kOcs;
  if (ocs)
    p.q.plan = plan_ocs(p.w, cfg.expand_ratio);
  else
    p.q.plan.in = cols;
  p.split = ocs ? apply_ocs(p.w, p.q.plan) : p.w;
  if (cfg.rotate) {
    p.q.rotation_seed = rotation_seed(cfg.rotation_seed + static_cast<uint64_t>(cfg.repeat), cols);
    p.rot = random_rotation(cols, p.q.rotation_seed);
    p.q.rotation = p.rot;
    p.split = p.w.mm(p.rot);
  }
  // α per group, on W' (default) or W (then only whole-row groups: validate() refuses groups
  // with grid-aware; α on the original uses the original's columns).
  const auto& basis = (ocs && cfg.alpha_on_original) ? p.w : p.split;
  const int64_t width = basis.size(1);
  const Granularity gran = cfg.granularity_for(m.name);
  const auto groups = groups_of(rows, width, gran, m.gated);
  p.alpha.resize(groups.size());
  const float* base = basis.data_ptr<float>();
  at::parallel_for(0, static_cast<int64_t>(groups.size()), 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Group& g = groups[static_cast<size_t>(i)];
      // Whole-row groups are contiguous over rows; a column group is one row's run.
      p.alpha[static_cast<size_t>(i)] =
          g.c0 == 0 && g.c1 == width
              ? choose_alpha(cfg.clip, base + g.r0 * width, (g.r1 - g.r0) * width, p.bits, p.grid)
              : choose_alpha(cfg.clip, base + g.r0 * width + g.c0, g.c1 - g.c0, p.bits, p.grid);
    }
  });
  if (alpha_factor != 1.0)
    for (auto& a : p.alpha) a = static_cast<float>(a * alpha_factor);
  if (cfg.repeat > 0) {
    // Rounding spread: another equally good rounding, α × a factor uniform in [0.99, 1.01] per
    // group, seeded by the matrix name and the repeat index (deterministic).
    std::mt19937_64 rng(std::hash<std::string>{}(m.name) ^ (0x9E3779B97F4A7C15ull * cfg.repeat));
    std::uniform_real_distribution<double> factor(0.99, 1.01);
    for (auto& a : p.alpha) a = static_cast<float>(a * factor(rng));
  }
  const bool column_groups = gran.kind == Granularity::Kind::kGroup;
  const int64_t wide = p.split.size(1);
  p.q.group_size = column_groups ? gran.group : wide;
  const int64_t per_row = column_groups ? (width + gran.group - 1) / gran.group : 1;
  p.q.step = torch::empty({rows, per_row});
  auto* st = p.q.step.data_ptr<float>();
  for (size_t i = 0; i < groups.size(); ++i) {
    const Group& g = groups[i];
    const int64_t k = column_groups ? g.c0 / gran.group : 0;
    const float step = stored_step(quantizer.step(p.alpha[i]), gran, cfg.half_scales);
    for (int64_t r = g.r0; r < g.r1; ++r) st[r * per_row + k] = step;
  }
  if (ocs && cfg.grid_aware) p.split = apply_ocs(p.w, p.q.plan, p.q.step.view({-1}));
  p.step = steps_per_weight(p.q.step, p.q.group_size, rows, wide).contiguous();
  return p;
}

MatrixResult finish_matrix(Prepared p, torch::Tensor codes) {
  const UniformQuantizer quantizer(p.bits);  // dequantize: codes · step, whatever the width
  const auto& m = *p.matrix;
  const int64_t rows = p.w.size(0), cols = p.w.size(1);
  MatrixResult r;
  r.split = p.split;
  r.q = std::move(p.q);
  r.q.codes = std::move(codes);
  r.dequant = quantizer.dequantize(r.q.codes, p.step);
  const OcsPlan& plan = r.q.plan;
  r.folded = to_input_basis(r.dequant, plan, p.rot);
  if (p.rot.defined()) {
    // The realisations hold the function Ŵ_Q Qᵀ (and the unrounded W) in the input basis.
    r.dequant = r.folded;
    r.split = p.w;
  }

  auto& rep = r.report;
  rep.name = m.name;
  rep.bits = p.bits;
  rep.rows = rows;
  rep.cols = cols;
  rep.split_channels = plan.splits();
  rep.max_abs_before = p.w.abs().max().item<double>();
  rep.max_abs_after = p.split.abs().max().item<double>();
  double sum = 0, mn = INFINITY, mx = 0;
  for (float a : p.alpha) sum += a, mn = std::min<double>(mn, a), mx = std::max<double>(mx, a);
  rep.alpha = sum / static_cast<double>(p.alpha.size());
  rep.alpha_min = mn;
  rep.alpha_max = mx;
  rep.groups = static_cast<int64_t>(p.alpha.size());
  auto err = (p.w.to(torch::kDouble) - r.folded.to(torch::kDouble));
  const double e2 = err.pow(2).sum().item<double>(),
               s2 = p.w.to(torch::kDouble).pow(2).sum().item<double>();
  rep.mse = e2 / static_cast<double>(p.w.numel());
  rep.sqnr_db = e2 > 0 ? 10 * std::log10(s2 / e2) : INFINITY;
  rep.clipped_fraction =
      (p.split.abs() > p.step * p.row_qmax() * (1 + 1e-6f)).sum().item<double>() /
      static_cast<double>(p.split.numel());
  if (!p.row_bits.empty()) {
    double sum = 0;
    for (int b : p.row_bits) sum += b, ++rep.rows_at_bits[b];
    rep.mean_bits = sum / static_cast<double>(p.row_bits.size());
    r.q.row_bits =
        torch::tensor(std::vector<int64_t>(p.row_bits.begin(), p.row_bits.end())).to(torch::kChar);
  } else {
    rep.mean_bits = p.bits;
  }
  rep.params_before = rows * cols;
  rep.params_after = rows * (cols + plan.splits());
  rep.macs_before = m.macs_per_column * cols;
  rep.macs_after = m.macs_per_column * (cols + plan.splits());
  return r;
}

MatrixResult round_to_nearest(Prepared p) {
  const UniformQuantizer quantizer(p.bits, p.grid);
  auto codes = quantizer.codes(p.split, p.step);
  return finish_matrix(std::move(p), std::move(codes));
}

// The widened matrix's input index: column c of W' reads x[idx[c]].
torch::Tensor widened_index(const OcsPlan& plan) {
  auto idx = torch::arange(plan.in, torch::kLong);
  if (plan.splits() == 0) return idx;
  return torch::cat({idx, torch::tensor(plan.source, torch::kLong)});
}

// The Hessian the prepared matrices are compensated with: they read the concatenation of their
// inputs (W_ih and W_hh of one layer: [x_t ; h_{t−1}]), whose H over the natural, unwidened inputs
// is `hessian`; in the basis the codes are in (OCS-widened, rotated).
torch::Tensor split_hessian(const std::vector<Prepared>& parts, const torch::Tensor& hessian) {
  std::vector<torch::Tensor> idx;
  int64_t offset = 0;
  for (const auto& p : parts) {
    idx.push_back(widened_index(p.q.plan) + offset);
    offset += p.q.plan.in;
  }
  if (offset != hessian.size(1))
    throw std::logic_error("gptq: the Hessian does not match the matrices' columns");
  const auto all = torch::cat(idx);
  // H' of the widened inputs x' = x[idx]: duplicated inputs give equal rows (singular H,
  // handled by the dampening).
  auto h = hessian.index_select(0, all).index_select(1, all);
  if (parts.front().rot.defined()) {
    // Rotated inputs x_Q = Qᵀ x per part: H_Q = Rᵀ H R with R = diag(Q_1, ..., Q_k).
    std::vector<torch::Tensor> rs;
    for (const auto& p : parts) rs.push_back(p.rot.to(torch::kDouble));
    const auto r = torch::block_diag(rs);
    h = r.t().mm(h.to(torch::kDouble)).mm(r);
  }
  return h;
}

// The configuration's GPTQ settings (dampening, column order, grid).
GptqOptions gptq_options(const QuantConfig& cfg) {
  GptqOptions go;
  go.damp = cfg.damp;
  go.order = cfg.gptq_order;
  go.grid = cfg.grid;
  return go;
}

// Codes of the prepared matrices compensated together with `h` (split_hessian's).
torch::Tensor gptq_parts(const std::vector<Prepared>& parts, const torch::Tensor& h,
                         const QuantConfig& cfg) {
  std::vector<torch::Tensor> ws, steps;
  std::vector<int32_t> qmax;
  for (const auto& p : parts) {
    ws.push_back(p.split);
    steps.push_back(p.step);
    qmax.insert(qmax.end(), static_cast<size_t>(p.split.size(1)),
                UniformQuantizer(p.bits, p.grid).qmax());
  }
  return gptq_codes(torch::cat(ws, 1), torch::cat(steps, 1), qmax, h, gptq_options(cfg));
}

// Codes of prepared decoders (the same rows, e.g. at each row width) compensated row by row
// against the output distribution: row v by GPTQ with its own F_v (quant/decoder_fisher.h), in
// the rotated basis when rotated; each block of rows' Hessians formed and factored once for all.
std::vector<torch::Tensor> fisher_codes(const std::vector<Prepared>& parts,
                                        const DecoderFisher& fisher, const QuantConfig& cfg) {
  const Prepared& p0 = parts.front();
  for (const auto& p : parts)
    if (p.q.plan.splits() > 0 || p.rot.defined() != p0.rot.defined() ||
        (p.rot.defined() && !torch::equal(p.rot, p0.rot)))
      throw std::logic_error("fisher codes: parts of one unwidened matrix in one basis expected");
  std::optional<DecoderFisher> rotated;
  if (p0.rot.defined()) rotated = fisher.rotated(p0.rot);
  const DecoderFisher& f = rotated ? *rotated : fisher;
  const GptqOptions go = gptq_options(cfg);
  std::vector<torch::Tensor> codes;
  std::vector<std::vector<int32_t>> qmax;
  for (const auto& p : parts) {
    codes.push_back(torch::empty(p.split.sizes(), torch::kShort));
    qmax.emplace_back(static_cast<size_t>(p.split.size(1)),
                      UniformQuantizer(p.bits, p.grid).qmax());
  }
  constexpr int64_t kBlock = 256;  // rows whose Hessians are formed at once (256 · n² doubles)
  const int64_t rows = p0.split.size(0);
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t nr = std::min(kBlock, rows - r0);
    const auto factors = gptq_row_factors(f.hessians(r0, r0 + nr), go);
    for (size_t k = 0; k < parts.size(); ++k)
      codes[k].narrow(0, r0, nr).copy_(gptq_row_codes(parts[k].split.narrow(0, r0, nr),
                                                      parts[k].step.narrow(0, r0, nr), qmax[k],
                                                      factors, cfg.grid));
  }
  return codes;
}

// Compensated codes of the matrices `prepare(c)` gives with every α scaled by c. With
// alpha_by_output, c is chosen per row from kAlphaFactors by the row's compensated output error
// (w − ŵ(c))ᵀ H' (w − ŵ(c)) (rows are independent under GPTQ once the steps are fixed), and the
// returned parts carry each row's chosen steps and α; otherwise c = 1.
std::pair<std::vector<Prepared>, torch::Tensor> searched_codes(
    const std::function<std::vector<Prepared>(double)>& prepare, const torch::Tensor& hessian,
    const QuantConfig& cfg) {
  std::vector<Prepared> best = prepare(1.0);
  const auto h = split_hessian(best, hessian);
  auto codes = gptq_parts(best, h, cfg);
  if (!cfg.alpha_by_output) return {std::move(best), codes};
  const auto hf = h.to(torch::kFloat);
  // Each row's output error with the codes of `parts`.
  auto row_error = [&](const std::vector<Prepared>& parts, const torch::Tensor& c) {
    std::vector<torch::Tensor> ws, steps;
    for (const auto& p : parts) ws.push_back(p.split), steps.push_back(p.step);
    const auto e = torch::cat(ws, 1) - c.to(torch::kFloat) * torch::cat(steps, 1);
    return (e.mm(hf) * e).sum(1);
  };
  auto err = row_error(best, codes);
  for (double f : kAlphaFactors) {
    if (f == 1.0) continue;
    std::vector<Prepared> parts = prepare(f);
    const auto c = gptq_parts(parts, h, cfg);
    const auto e = row_error(parts, c);
    const auto better = (e < err).nonzero().view({-1});
    if (better.numel() == 0) continue;
    err.index_copy_(0, better, e.index_select(0, better));
    codes.index_copy_(0, better, c.index_select(0, better));
    const auto* rows = better.data_ptr<int64_t>();
    for (size_t k = 0; k < parts.size(); ++k) {
      Prepared& b = best[k];
      const Prepared& src = parts[k];
      b.step.index_copy_(0, better, src.step.index_select(0, better));
      b.q.step.index_copy_(0, better, src.q.step.index_select(0, better));
      const int64_t per_row = static_cast<int64_t>(b.alpha.size()) / b.w.size(0);
      if (per_row * b.w.size(0) != static_cast<int64_t>(b.alpha.size()))
        throw std::logic_error("α search: not one α per row or group");
      for (int64_t i = 0; i < better.numel(); ++i)
        for (int64_t g = 0; g < per_row; ++g) {
          const auto at = static_cast<size_t>(rows[i] * per_row + g);
          b.alpha[at] = src.alpha[at];
        }
    }
  }
  return {std::move(best), codes};
}

// Matrices compensated together (`prepare(c)`: their Prepared parts with α scaled by c) with
// `hessian` over their natural inputs.
std::vector<MatrixResult> compensate_with(
    const std::function<std::vector<Prepared>(double)>& prepare, const torch::Tensor& hessian,
    const QuantConfig& cfg) {
  auto [parts, codes] = searched_codes(prepare, hessian, cfg);
  std::vector<MatrixResult> out;
  int64_t c = 0;
  for (auto& p : parts) {
    const int64_t width = p.split.size(1);
    auto part = codes.narrow(1, c, width).contiguous();
    c += width;
    out.push_back(finish_matrix(std::move(p), part));
  }
  return out;
}

// What row sensitivities are measured with (quant/row_widths.h).
struct RowData {
  torch::Tensor freq;          // [V] smoothed train frequencies
  torch::Tensor feed;          // W_ih of layer 0 (float): what an embedding row feeds
  torch::Tensor decoder_h;     // the float model's top-layer outputs on the calibration slice
  torch::Tensor decoder_bias;  // the float decoder's bias
};

// A vocabulary matrix with a width per row: the matrix quantized whole at every width of
// cfg.row_widths (nearest, compensated with `hessian` when it is defined, or row by row with the
// decoder's Fisher Hessians when `fisher` is given), each row's error
// at each width measured by the sensitivity, the widths allocated (quant/row_widths.h), and
// each row taken from the quantization at its width (rows are independent: a row's codes and
// steps do not depend on the other rows, with or without compensation).
MatrixResult quantize_rows(const NamedMatrix& m, const torch::Tensor& w, const QuantConfig& cfg,
                           const RowData& data, const torch::Tensor& hessian,
                           const DecoderFisher* fisher) {
  std::vector<Prepared> ps;
  std::vector<torch::Tensor> codes, errors;
  auto at_width = [&](int b) {
    QuantConfig cb = cfg;
    cb.matrix_bits[m.name] = b;
    return cb;
  };
  if (fisher) {  // every width at once: each block of rows' Hessians factored once
    for (int b : cfg.row_widths) ps.push_back(prepare_matrix(m, w, at_width(b)));
    codes = fisher_codes(ps, *fisher, cfg);
  }
  for (size_t k = 0; k < cfg.row_widths.size(); ++k) {
    const int b = cfg.row_widths[k];
    if (!fisher) {
      Prepared p;
      torch::Tensor c;
      if (hessian.defined()) {
        const QuantConfig cb = at_width(b);
        auto [parts, cs] = searched_codes(
            [&](double f) { return std::vector<Prepared>{prepare_matrix(m, w, cb, f)}; }, hessian,
            cfg);
        p = std::move(parts.front());
        c = cs;
      } else {
        p = prepare_matrix(m, w, at_width(b));
        c = UniformQuantizer(b, cfg.grid).codes(p.split, p.step);
      }
      codes.push_back(c);
      ps.push_back(std::move(p));
    }
    const Prepared& p = ps[k];
    errors.push_back(p.w - to_input_basis(codes[k].to(torch::kFloat) * p.step, p.q.plan, p.rot));
  }
  const bool by_fisher =
      m.kind == MatrixKind::kDecoder && !m.tied && cfg.row_sensitivity == RowSensitivity::kOutput;
  const auto cost =
      by_fisher ? fisher_sensitivity(errors, data.decoder_h, ps.front().w, data.decoder_bias)
                : frequency_sensitivity(
                      errors, data.freq,
                      m.kind == MatrixKind::kEmbedding && !m.tied ? data.feed : torch::Tensor());
  const RowAllocation a = allocate_row_widths(cost, cfg.row_widths, cfg.row_budget_for(m.name));
  // Row r from the quantization at its width: codes, every weight's step, the group steps, α.
  Prepared out = std::move(ps.back());  // the widest: w, split, plan and group size are shared
  out.bits = cfg.row_widths.back();
  out.row_bits = a.bits;
  const int64_t rows = out.w.size(0);
  const int64_t per_row = out.q.step.size(1);
  auto all_codes = codes.back().clone();
  for (int64_t r = 0; r < rows; ++r) {
    const int b = a.bits[static_cast<size_t>(r)];
    const size_t k = static_cast<size_t>(
        std::find(cfg.row_widths.begin(), cfg.row_widths.end(), b) - cfg.row_widths.begin());
    if (k + 1 == cfg.row_widths.size()) continue;  // already the widest's
    const Prepared& src = ps[k];
    all_codes[r].copy_(codes[k][r]);
    out.step[r].copy_(src.step[r]);
    out.q.step[r].copy_(src.q.step[r]);
    for (int64_t g = 0; g < per_row; ++g)
      out.alpha[static_cast<size_t>(r * per_row + g)] =
          src.alpha[static_cast<size_t>(r * per_row + g)];
  }
  return finish_matrix(std::move(out), all_codes);
}

}  // namespace

bool has_row_widths(const NamedMatrix& m, const QuantConfig& cfg) {
  return cfg.has_row_widths() && cfg.matrix_bits.count(m.name) == 0 &&
         (m.kind == MatrixKind::kEmbedding || m.kind == MatrixKind::kDecoder);
}

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

QuantizedModel quantize_model(const LstmLm& model, const QuantConfig& cfg,
                              const Calibration* calibration) {
  cfg.validate();
  const bool gptq = cfg.rounding == Rounding::kGptq;
  if (cfg.needs_calibration() && (!calibration || !calibration->tokens.defined()))
    throw std::invalid_argument(std::string(gptq ? "gptq rounding" : "row widths") +
                                " need calibration data (a slice of the train split, "
                                "quant/calibration.h)");
  const auto t0 = std::chrono::steady_clock::now();
  QuantizedModel out;
  out.config = cfg;
  const auto& mc = model->config();
  const auto device = model->device();
  out.folded = LstmLm(model->clone_model());
  if (cfg.build_expanded) {
    out.expanded = LstmLm(model->clone_model());
    if (cfg.method == Method::kOcs) out.transformed = LstmLm(model->clone_model());
  }
  // Whole-model accounting starts from every stored weight at 32 bits.
  out.params_before = stored_parameter_count(*model);
  out.float_size_bits = 32.0 * static_cast<double>(out.params_before);
  out.size_bits = out.float_size_bits;
  out.macs_before = macs_per_token(*model);

  torch::NoGradGuard guard;
  // Installs a matrix into the realisations: folded gets Ŵ; expanded gets Ŵ' and the index
  // list; transformed gets the unrounded W' and the index list.
  auto install = [&](const NamedMatrix& m, const MatrixResult& r) {
    m.weight(*out.folded).set_data(r.folded.to(device));
    const auto idx = r.q.plan.splits() > 0 ? ocs_index(r.q.plan, device) : torch::Tensor();
    for (auto [real, w] :
         {std::pair{&out.expanded, &r.dequant}, std::pair{&out.transformed, &r.split}}) {
      if (!*real) continue;
      m.weight(**real).set_data(w->to(device));
      m.expansion_slot(**real) = idx;
      // The tied matrix's split columns are also the decoder's duplicated inputs.
      if (m.tied) (*real)->expansion.decoder_idx = idx;
    }
    // Codes at their widths (each row's with row widths, plus the bits naming its width), the
    // steps, minus the float weights they replace.
    const double width = static_cast<double>(r.report.params_after) / r.report.rows;
    const double code_bits =
        r.q.row_bits.defined()
            ? r.q.row_bits.to(torch::kDouble).sum().item<double>() * width +
                  width_tag_bits(cfg.row_widths) * static_cast<double>(r.report.rows)
            : cfg.bits_for(m.name) * static_cast<double>(r.report.params_after);
    out.size_bits += code_bits - 32.0 * r.report.params_before +
                     (r.q.rotation.defined() ? 64.0 : 0.0) +
                     scale_bits(cfg.granularity_for(m.name), cfg.half_scales) *
                         static_cast<double>(r.report.groups);
    out.params_after += r.report.params_after - r.report.params_before;
    out.macs_after += r.report.macs_after - r.report.macs_before;
    out.matrices.push_back(r.report);
    out.tensors.push_back(r.q);
  };
  for (const auto& kv : cfg.matrix_bits) find_matrix(mc, kv.first);  // throws listing the names
  for (const auto& kv : cfg.matrix_granularity) find_matrix(mc, kv.first);
  for (const auto& kv : cfg.matrix_row_budget)
    if (!has_row_widths(find_matrix(mc, kv.first), cfg))
      throw std::invalid_argument("a row budget for matrix " + kv.first +
                                  ", which has no row widths (only the embedding and the "
                                  "decoder without a --matrix-bits entry have)");
  const std::vector<NamedMatrix> wanted = targeted_matrices(mc, cfg.targets);
  // Row widths: frequencies of the train split; W_ih of layer 0; the float decoder's inputs on
  // the calibration slice (for its Fisher sensitivity).
  RowData rows;
  if (cfg.has_row_widths()) {
    rows.freq = smoothed_frequency(calibration->token_counts, mc.vocab);
    rows.feed = model->w_ih.at(0).detach().to(torch::kCPU, torch::kFloat);
    rows.decoder_bias = model->decoder_bias.detach().to(torch::kCPU, torch::kFloat);
    for (const auto& m : wanted)
      if (m.kind == MatrixKind::kDecoder && has_row_widths(m, cfg) &&
          cfg.row_sensitivity == RowSensitivity::kOutput)
        rows.decoder_h = calibration_inputs(*LstmLm(model), *calibration, {m.name}).at(m.name);
  }
  // A matrix rounded to nearest, compensated with `hessian` (over its natural inputs), or row by
  // row with the decoder's Fisher Hessians.
  auto quantize_one = [&](const NamedMatrix& m, const torch::Tensor& hessian,
                          const DecoderFisher* fisher = nullptr) {
    const auto& w = m.weight(*model);
    if (has_row_widths(m, cfg)) return install(m, quantize_rows(m, w, cfg, rows, hessian, fisher));
    if (fisher) {
      std::vector<Prepared> p{prepare_matrix(m, w, cfg)};
      auto codes = fisher_codes(p, *fisher, cfg);
      return install(m, finish_matrix(std::move(p.front()), codes.front()));
    }
    if (hessian.defined())
      return install(
          m, compensate_with(
                 [&](double f) { return std::vector<Prepared>{prepare_matrix(m, w, cfg, f)}; },
                 hessian, cfg)
                 .front());
    install(m, round_to_nearest(prepare_matrix(m, w, cfg)));
  };
  auto nearest = [&](const NamedMatrix& m) { quantize_one(m, torch::Tensor()); };
  if (!gptq) {
    for (const auto& m : wanted) nearest(m);
  } else {
    // Data-flow order: embedding, then each layer's [W_ih | W_hh], then the decoder; each stage
    // collects its inputs from the model with the stages before it already quantized.
    std::vector<std::vector<const NamedMatrix*>> stages;
    std::vector<const NamedMatrix*> first, last;
    for (const auto& m : wanted)
      if (m.kind == MatrixKind::kEmbedding) first.push_back(&m);  // incl. the tied matrix
    stages.push_back(first);
    for (int64_t l = 0; l < mc.layers; ++l) {
      std::vector<const NamedMatrix*> layer;
      for (auto kind : {MatrixKind::kInput, MatrixKind::kRecurrent})
        for (const auto& m : wanted)
          if (m.kind == kind && m.layer == l) layer.push_back(&m);
      stages.push_back(layer);
    }
    for (const auto& m : wanted)
      if (m.kind == MatrixKind::kDecoder) last.push_back(&m);
    stages.push_back(last);
    const size_t decoder_stage = stages.size() - 1;
    for (size_t s = 0; s < stages.size(); ++s) {
      const auto& stage = stages[s];
      if (stage.empty()) continue;
      // The embedding has no calibration input: rounded to nearest, or with gptq_embedding
      // (untied) against W_ih of layer 0, H = W_ihᵀ W_ih; the decoder only with gptq_decoder (its
      // logits' H) or fisher_decoder (a Fisher Hessian per row).
      if (s == 0) {
        for (const auto* m : stage) {
          if (cfg.gptq_embedding && !m->tied) {
            const auto wih = model->w_ih.at(0).detach().to(torch::kCPU, torch::kDouble);
            quantize_one(*m, wih.t().mm(wih));
          } else {
            nearest(*m);
          }
        }
        continue;
      }
      if (s == decoder_stage) {
        for (const auto* m : stage) {
          const bool fisher = cfg.fisher_decoder && !m->tied;
          if (!cfg.gptq_decoder && !fisher) {
            nearest(*m);
            continue;
          }
          const auto x = calibration_inputs(*out.folded, *calibration, {m->name}).at(m->name);
          if (fisher) {
            // p_t from the float decoder on the inputs it will see (the layers below quantized).
            const DecoderFisher f(x, m->weight(*model), model->decoder_bias);
            quantize_one(*m, torch::Tensor(), &f);
          } else {
            quantize_one(*m, gptq_hessian(x));
          }
        }
        continue;
      }
      std::vector<std::string> names;
      for (const auto* m : stage) names.push_back(m->name);
      auto inputs = calibration_inputs(*out.folded, *calibration, names);
      std::vector<torch::Tensor> xs;
      for (const auto* m : stage) xs.push_back(inputs.at(m->name));
      auto results = compensate_with(
          [&](double f) {
            std::vector<Prepared> parts;
            for (const auto* m : stage)
              parts.push_back(prepare_matrix(*m, m->weight(*model), cfg, f));
            return parts;
          },
          gptq_hessian(torch::cat(xs, 1)), cfg);
      for (size_t i = 0; i < stage.size(); ++i) install(*stage[i], results[i]);
    }
  }
  out.params_after += out.params_before;
  out.macs_after += out.macs_before;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace lmquant
