#include "quant/quantize_model.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <stdexcept>

#include "quant/uniform_quantizer.h"

namespace lmquant {

void QuantConfig::validate() const {
  UniformQuantizer check(bits);
  if (method == Method::kOcs) {
    ocs_split_count(expand_ratio, 1);  // validates the range
  } else if (expand_ratio != 0 || grid_aware || alpha_on_original) {
    throw std::invalid_argument("--expand-ratio, --ocs-grid-aware and --alpha-on-original apply "
                                "to --method ocs only");
  }
  if (targets.empty()) throw std::invalid_argument("no targets to quantize");
}

nlohmann::json QuantConfig::to_json() const {
  nlohmann::json j = {{"method", to_string(method)}, {"bits", bits},
                      {"clip", clip.to_string()},    {"granularity", to_string(granularity)},
                      {"targets", to_string(targets)}};
  if (method == Method::kOcs) {
    j["expand_ratio"] = expand_ratio;
    j["grid_aware"] = grid_aware;
    j["alpha_on"] = alpha_on_original ? "original" : "split";
  }
  return j;
}

std::string QuantConfig::label() const {
  if (method == Method::kFloat) return "float";
  char r[32];
  std::snprintf(r, sizeof r, "%g", expand_ratio);
  std::string s = method == Method::kOcs ? std::string("ocs r=") + r + " " : "";
  s += clip.to_string() + " " + std::to_string(bits) + "b " + to_string(granularity);
  if (grid_aware) s += " grid";
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

bool has(const std::vector<Target>& ts, Target t) {
  for (auto x : ts)
    if (x == t) return true;
  return false;
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
  // Whole-model accounting starts from every weight at 32 bits.
  int64_t all_params = 0;
  for (const auto& [name, t] : model->named_weights())
    if (!(name == "decoder.weight" && mc.tied)) all_params += t.numel();
  out.float_size_bits = 32.0 * all_params;
  out.size_bits = out.float_size_bits;
  for (int64_t l = 0; l < mc.layers; ++l)
    out.macs_before += model->w_ih[l].numel() + model->w_hh[l].numel();
  out.macs_before += model->decoder_weight.numel();
  out.params_before = all_params;

  torch::NoGradGuard guard;
  auto account = [&](const MatrixResult& r) {
    out.size_bits += (cfg.bits - 32.0) * r.report.params_before +
                     cfg.bits * (r.report.params_after - r.report.params_before) +
                     32.0 * r.report.groups;
    out.params_after += r.report.params_after - r.report.params_before;
    out.macs_after += r.report.macs_after - r.report.macs_before;
    out.matrices.push_back(r.report);
    out.tensors.push_back(r.q);
  };
  auto idx = [&](const MatrixResult& r) {
    return r.q.plan.splits() > 0 ? ocs_index(r.q.plan, device) : torch::Tensor();
  };
  // Replaces a parameter's tensor (shapes may widen) in a realisation.
  auto put = [&](torch::Tensor& param, const torch::Tensor& value) {
    param.set_data(value.to(device));
  };
  // Installs a matrix into the realisations: folded gets Ŵ; expanded gets Ŵ' and the index
  // list; transformed gets the unrounded W' and the index list. `slot` names the parameter and
  // the index list of a realisation.
  using Slot = std::function<std::pair<torch::Tensor*, torch::Tensor*>(LstmLm&)>;
  auto install = [&](const MatrixResult& r, const Slot& slot) {
    put(*slot(out.folded).first, r.folded);
    for (auto [m, w] : {std::pair{&out.expanded, &r.dequant}, std::pair{&out.transformed, &r.split}}) {
      if (!*m) continue;
      auto [param, index] = slot(*m);
      put(*param, *w);
      *index = idx(r);
    }
    account(r);
  };
  for (auto* m : {&out.folded, &out.expanded, &out.transformed}) {  // slots for every layer
    if (!*m) continue;
    (*m)->expansion.input_idx.resize(static_cast<size_t>(mc.layers));
    (*m)->expansion.recurrent_idx.resize(static_cast<size_t>(mc.layers));
  }
  const bool emb = has(cfg.targets, Target::kEmbedding), dec = has(cfg.targets, Target::kDecoder);
  if (mc.tied && (emb || dec)) {
    // One matrix: its split columns are embedding dimensions (re-summed after the lookup) and
    // decoder inputs (h duplicated); MACs are the decoder's (V per column).
    install(quantize_matrix("embedding+decoder", model->encoder, false, mc.vocab, cfg),
            [](LstmLm& m) { return std::pair{&m->encoder, &m->expansion.embedding_idx}; });
    for (auto* m : {&out.expanded, &out.transformed})
      if (*m) (*m)->expansion.decoder_idx = (*m)->expansion.embedding_idx;
  } else {
    if (emb)
      install(quantize_matrix("embedding", model->encoder, false, 0, cfg),
              [](LstmLm& m) { return std::pair{&m->encoder, &m->expansion.embedding_idx}; });
    if (dec)
      install(quantize_matrix("decoder", model->decoder_weight, false, mc.vocab, cfg),
              [](LstmLm& m) { return std::pair{&m->decoder_weight, &m->expansion.decoder_idx}; });
  }
  for (int64_t l = 0; l < mc.layers; ++l) {
    const auto s = std::to_string(l);
    const auto L = static_cast<size_t>(l);
    if (has(cfg.targets, Target::kInput))
      install(quantize_matrix("input.l" + s, model->w_ih[l], true, 4 * mc.hidden, cfg),
              [L](LstmLm& m) { return std::pair{&m->w_ih[L], &m->expansion.input_idx[L]}; });
    if (has(cfg.targets, Target::kRecurrent))
      install(quantize_matrix("recurrent.l" + s, model->w_hh[l], true, 4 * mc.hidden, cfg),
              [L](LstmLm& m) { return std::pair{&m->w_hh[L], &m->expansion.recurrent_idx[L]}; });
  }
  out.params_after += out.params_before;
  out.macs_after += out.macs_before;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace lmquant
