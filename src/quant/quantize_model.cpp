#include "quant/quantize_model.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <random>
#include <stdexcept>

#include "lm/matrices.h"
#include "quant/uniform_quantizer.h"

namespace lmquant {

void QuantConfig::validate() const {
  if (method == Method::kFloat) return;
  UniformQuantizer check(bits);
  if (method == Method::kOcs) {
    ocs_split_count(expand_ratio, 1);  // validates the range
  } else if (expand_ratio != 0 || grid_aware || alpha_on_original) {
    throw std::invalid_argument("the OCS settings (expand ratio " + std::to_string(expand_ratio) +
                                ", grid-aware, α on the original matrix) apply to the ocs method "
                                "only, not to " + to_string(method));
  }
  if (targets.empty()) throw std::invalid_argument("no targets to quantize");
  if (repeat < 0) throw std::invalid_argument("repeat must be >= 0, got " + std::to_string(repeat));
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
  q.repeat = j.value("repeat", 0);
  q.validate();
  return q;
}

bool QuantConfig::operator==(const QuantConfig& o) const { return to_json() == o.to_json(); }

nlohmann::json QuantConfig::to_json() const {
  if (method == Method::kFloat) return {{"method", "float"}};
  nlohmann::json j = {{"method", to_string(method)}, {"bits", bits},
                      {"clip", clip.to_string()},    {"granularity", to_string(granularity)},
                      {"targets", to_string(targets)}};
  if (method == Method::kOcs) {
    j["expand_ratio"] = expand_ratio;
    j["grid_aware"] = grid_aware;
    j["alpha_on"] = alpha_on_original ? "original" : "split";
  }
  if (repeat > 0) j["repeat"] = repeat;
  return j;
}

std::string QuantConfig::label(bool with_bits) const {
  if (method == Method::kFloat) return "float";
  char r[32];
  std::snprintf(r, sizeof r, "%g", expand_ratio);
  std::string s = method == Method::kOcs ? std::string("ocs r=") + r + " " : "";
  s += clip.to_string() + " " + (with_bits ? std::to_string(bits) + "b " : "") +
       to_string(granularity);
  if (grid_aware) s += " grid";
  if (alpha_on_original) s += " α-orig";
  if (repeat > 0) s += " rep" + std::to_string(repeat);
  return s;
}

nlohmann::json MatrixReport::to_json() const {
  return {{"name", name},
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
          {"params_before", params_before},
          {"params_after", params_after},
          {"params_overhead", params_after - params_before},
          {"macs_before", macs_before},
          {"macs_after", macs_after},
          {"macs_overhead", macs_after - macs_before}};
}

MatrixReport MatrixReport::from_json(const nlohmann::json& j) {
  MatrixReport r;
  r.name = j.at("name").get<std::string>();
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
  r.sqnr_db = j.contains("sqnr_db") && j["sqnr_db"].is_number() ? j["sqnr_db"].get<double>()
                                                                 : INFINITY;
  r.clipped_fraction = j.value("clipped_fraction", 0.0);
  r.params_before = j.value("params_before", int64_t{0});
  r.params_after = j.value("params_after", int64_t{0});
  r.macs_before = j.value("macs_before", int64_t{0});
  r.macs_after = j.value("macs_after", int64_t{0});
  return r;
}

namespace {

struct MatrixResult {
  torch::Tensor split;      // W' before rounding (grid-aware if on); = W without OCS
  torch::Tensor dequant;    // Ŵ' (rows x cols')
  torch::Tensor folded;     // Ŵ (rows x cols)
  QuantizedMatrix q;
  MatrixReport report;
};

// Row ranges of the quantization groups.
std::vector<std::pair<int64_t, int64_t>> groups_of(int64_t rows, Granularity g, bool gated) {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (g == Granularity::kRow) {
    for (int64_t r = 0; r < rows; ++r) out.emplace_back(r, r + 1);
  } else if (g == Granularity::kGate && gated && rows % 4 == 0) {
    for (int64_t k = 0; k < 4; ++k) out.emplace_back(k * rows / 4, (k + 1) * rows / 4);
  } else {
    out.emplace_back(0, rows);
  }
  return out;
}

MatrixResult quantize_matrix(const std::string& name, const torch::Tensor& w_in, bool gated,
                             int64_t macs_per_col, const QuantConfig& cfg) {
  const UniformQuantizer quantizer(cfg.bits);
  auto w = w_in.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t rows = w.size(0), cols = w.size(1);
  MatrixResult r;
  r.q.name = name;
  const bool ocs = cfg.method == Method::kOcs;
  if (ocs) r.q.plan = plan_ocs(w, cfg.expand_ratio);
  else r.q.plan.in = cols;
  const OcsPlan& plan = r.q.plan;
  auto split = ocs ? apply_ocs(w, plan) : w;
  // α per group, on W' (default) or W.
  const auto& basis = (ocs && cfg.alpha_on_original) ? w : split;
  auto groups = groups_of(rows, cfg.granularity, gated);
  std::vector<float> alpha(groups.size());
  const int64_t width = basis.size(1);
  const float* base = basis.data_ptr<float>();
  at::parallel_for(0, static_cast<int64_t>(groups.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; ++g) {
      const auto [r0, r1] = groups[static_cast<size_t>(g)];
      alpha[static_cast<size_t>(g)] = choose_alpha(cfg.clip, base + r0 * width, (r1 - r0) * width, cfg.bits);
    }
  });
  if (cfg.repeat > 0) {
    // Rounding spread: another equally good rounding, α × a factor uniform in [0.99, 1.01] per
    // group, seeded by the matrix name and the repeat index (deterministic).
    std::mt19937_64 rng(std::hash<std::string>{}(name) ^ (0x9E3779B97F4A7C15ull * cfg.repeat));
    std::uniform_real_distribution<double> factor(0.99, 1.01);
    for (auto& a : alpha) a = static_cast<float>(a * factor(rng));
  }
  auto step = torch::empty({rows});
  auto alpha_row = torch::empty({rows});
  for (size_t g = 0; g < groups.size(); ++g) {
    step.narrow(0, groups[g].first, groups[g].second - groups[g].first).fill_(quantizer.step(alpha[g]));
    alpha_row.narrow(0, groups[g].first, groups[g].second - groups[g].first).fill_(alpha[g]);
  }
  if (ocs && cfg.grid_aware) split = apply_ocs(w, plan, step);
  r.split = split;
  r.q.codes = quantizer.codes(split, step);
  r.q.step = step;
  r.dequant = quantizer.dequantize(r.q.codes, step);
  r.folded = ocs ? fold_ocs(r.dequant, plan) : r.dequant;

  auto& rep = r.report;
  rep.name = name;
  rep.rows = rows;
  rep.cols = cols;
  rep.split_channels = plan.splits();
  rep.max_abs_before = w.abs().max().item<double>();
  rep.max_abs_after = split.abs().max().item<double>();
  double sum = 0, mn = INFINITY, mx = 0;
  for (float a : alpha) sum += a, mn = std::min<double>(mn, a), mx = std::max<double>(mx, a);
  rep.alpha = sum / static_cast<double>(alpha.size());
  rep.alpha_min = mn;
  rep.alpha_max = mx;
  rep.groups = static_cast<int64_t>(groups.size());
  auto err = (w.to(torch::kDouble) - r.folded.to(torch::kDouble));
  const double e2 = err.pow(2).sum().item<double>(), s2 = w.to(torch::kDouble).pow(2).sum().item<double>();
  rep.mse = e2 / static_cast<double>(w.numel());
  rep.sqnr_db = e2 > 0 ? 10 * std::log10(s2 / e2) : INFINITY;
  rep.clipped_fraction =
      (split.abs() > alpha_row.unsqueeze(1) * (1 + 1e-6f)).sum().item<double>() /
      static_cast<double>(split.numel());
  rep.params_before = rows * cols;
  rep.params_after = rows * (cols + plan.splits());
  rep.macs_before = macs_per_col * cols;
  rep.macs_after = macs_per_col * (cols + plan.splits());
  return r;
}

}  // namespace

QuantizedModel quantize_model(const LstmLm& model, const QuantConfig& cfg) {
  cfg.validate();
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
    for (auto [real, w] : {std::pair{&out.expanded, &r.dequant}, std::pair{&out.transformed, &r.split}}) {
      if (!*real) continue;
      m.weight(**real).set_data(w->to(device));
      m.expansion_slot(**real) = idx;
      // The tied matrix's split columns are also the decoder's duplicated inputs.
      if (m.tied) (*real)->expansion.decoder_idx = idx;
    }
    out.size_bits += (cfg.bits - 32.0) * r.report.params_before +
                     cfg.bits * (r.report.params_after - r.report.params_before) +
                     32.0 * r.report.groups;
    out.params_after += r.report.params_after - r.report.params_before;
    out.macs_after += r.report.macs_after - r.report.macs_before;
    out.matrices.push_back(r.report);
    out.tensors.push_back(r.q);
  };
  for (const auto& m : named_matrices(mc)) {
    bool wanted = false;
    for (auto t : cfg.targets) wanted = wanted || m.covers(t);
    if (!wanted) continue;
    install(m, quantize_matrix(m.name, m.weight(*model), m.gated, m.macs_per_column, cfg));
  }
  out.params_after += out.params_before;
  out.macs_after += out.macs_before;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace lmquant
