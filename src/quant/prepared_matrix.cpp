#include "quant/prepared_matrix.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <stdexcept>

#include "quant/rotation.h"
#include "quant/uniform_quantizer.h"

namespace lmquant {

Prepared prepare_matrix(const NamedMatrix& m, const torch::Tensor& w_in, const QuantConfig& cfg,
                        double alpha_factor, int64_t first_row) {
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
  if (first_row > 0 && gran.kind != Granularity::Kind::kRow &&
      gran.kind != Granularity::Kind::kGroup)
    throw std::logic_error("prepare_matrix: a block of rows needs row or group scales");
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
    // A block of rows continues the matrix's draws (row-major groups: one draw per group, one
    // engine output per draw for a double).
    rng.discard(static_cast<unsigned long long>(first_row) * groups.size() /
                static_cast<unsigned long long>(std::max<int64_t>(1, rows)));
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

void take_rows(Prepared& dst, const Prepared& src, const torch::Tensor& rows) {
  dst.step.index_copy_(0, rows, src.step.index_select(0, rows));
  dst.q.step.index_copy_(0, rows, src.q.step.index_select(0, rows));
  const int64_t per_row = static_cast<int64_t>(dst.alpha.size()) / dst.w.size(0);
  if (per_row * dst.w.size(0) != static_cast<int64_t>(dst.alpha.size()) ||
      src.alpha.size() != dst.alpha.size())
    throw std::logic_error("take_rows: not one α per row or group of the same rows");
  const auto idx = rows.to(torch::kLong).contiguous();
  const int64_t* r = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < idx.numel(); ++i)
    std::copy_n(src.alpha.begin() + r[i] * per_row, per_row, dst.alpha.begin() + r[i] * per_row);
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
  // The errors in blocks of rows (in double), so that no matrix-sized double copy is made.
  double e2 = 0, s2 = 0, clipped = 0;
  const auto qmax = p.row_qmax();
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, cols));
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    const int64_t nb = std::min(block, rows - r0);
    const auto wb = p.w.narrow(0, r0, nb).to(torch::kDouble);
    e2 += (wb - r.folded.narrow(0, r0, nb).to(torch::kDouble)).pow(2).sum().item<double>();
    s2 += wb.pow(2).sum().item<double>();
    clipped += (p.split.narrow(0, r0, nb).abs() >
                p.step.narrow(0, r0, nb) * qmax.narrow(0, r0, nb) * (1 + 1e-6f))
                   .sum()
                   .item<double>();
  }
  rep.mse = e2 / static_cast<double>(p.w.numel());
  rep.sqnr_db = e2 > 0 ? 10 * std::log10(s2 / e2) : INFINITY;
  rep.clipped_fraction = clipped / static_cast<double>(p.split.numel());
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

}  // namespace lmquant
