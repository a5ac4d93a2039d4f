#include "quant/rounding.h"

#include <algorithm>
#include <optional>
#include <set>
#include <stdexcept>

#include "quant/uniform_quantizer.h"

namespace lmquant {
namespace {

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

}  // namespace

MatrixResult round_to_nearest(Prepared p) {
  const UniformQuantizer quantizer(p.bits, p.grid);
  auto codes = quantizer.codes(p.split, p.step);
  return finish_matrix(std::move(p), std::move(codes));
}

// The configuration's GPTQ settings (dampening, column order, grid).
GptqOptions gptq_options(const QuantConfig& cfg) {
  GptqOptions go;
  go.damp = cfg.damp;
  go.order = cfg.gptq_order;
  go.grid = cfg.grid;
  return go;
}

// Codes of prepared decoders (the same rows, e.g. at each row width) compensated row by row
// against the output distribution: row v by GPTQ with its own F_v (quant/decoder_fisher.h), in
// the rotated basis when rotated; each block of rows' Hessians formed and factored once for all.
DecoderFisher in_basis_of(const DecoderFisher& fisher, const Prepared& p) {
  return p.rot.defined() ? fisher.rotated(p.rot) : fisher;
}

std::vector<torch::Tensor> fisher_codes(const std::vector<Prepared>& parts, const DecoderFisher& f,
                                        const QuantConfig& cfg, int64_t first_row,
                                        FamilyFactors* cache) {
  const Prepared& p0 = parts.front();
  for (const auto& p : parts)
    if (p.q.plan.splits() > 0 || p.rot.defined() != p0.rot.defined() ||
        (p.rot.defined() && !torch::equal(p.rot, p0.rot)))
      throw std::logic_error("fisher codes: parts of one unwidened matrix in one basis expected");
  const GptqOptions go = gptq_options(cfg);
  std::vector<torch::Tensor> codes;
  std::vector<std::vector<int32_t>> qmax;
  for (const auto& p : parts) {
    codes.push_back(torch::empty(p.split.sizes(), torch::kShort));
    qmax.emplace_back(static_cast<size_t>(p.split.size(1)),
                      UniformQuantizer(p.bits, p.grid).qmax());
  }
  // The codes of rows `idx` (int64, of this call's rows) with `factors`, written back to them.
  auto run = [&](const torch::Tensor& idx, const GptqRowFactors& factors) {
    for (size_t k = 0; k < parts.size(); ++k)
      codes[k].index_copy_(
          0, idx,
          gptq_row_codes(parts[k].split.index_select(0, idx), parts[k].step.index_select(0, idx),
                         qmax[k], factors, cfg.grid));
  };
  const int64_t n = p0.split.size(1);
  const int64_t rows = p0.split.size(0);
  const auto keys = f.family_keys(first_row, first_row + rows);
  // Rows of a family: all at once, with its one factorisation (decoder_fisher.h).
  FamilyFactors local;
  FamilyFactors& families = cache ? *cache : local;
  std::set<int64_t> present;
  const int64_t* key_of = keys.data_ptr<int64_t>();
  for (int64_t i = 0; i < rows; ++i)
    if (key_of[i] >= 0) present.insert(key_of[i]);
  for (int64_t key : present) {
    auto it = families.factors.find(key);
    std::optional<GptqRowFactors> once;
    if (it == families.factors.end()) {
      once = gptq_row_factors(f.family_hessian(key).unsqueeze(0), go);
      const int64_t bytes = 8 * (once->u.numel() + once->order.numel());
      if (families.bytes + bytes <= kFamilyCacheBytes) {
        it = families.factors.emplace(key, *once).first;
        families.bytes += bytes;
      }
    }
    run((keys == key).nonzero().view({-1}), once ? *once : it->second);
  }
  // Rows with Hessians of their own, formed and factored a block at a time: ~8 MB of n² doubles
  // each, at most 256 rows (the results do not depend on it: every row has its own Hessian). The
  // factorisation holds about five such copies at once: at ~32 MB a copy (104 rows of n = 200) it
  // was 167 MB of wt2-lstm200's 628 MB live peak in a Fisher row-width cell.
  const auto own = (keys < 0).nonzero().view({-1});
  const int64_t block =
      std::clamp<int64_t>((int64_t{1} << 20) / std::max<int64_t>(1, n * n), 1, 256);
  for (int64_t o0 = 0; o0 < own.numel(); o0 += block) {
    const auto idx = own.narrow(0, o0, std::min(block, own.numel() - o0));
    run(idx, gptq_row_factors(f.hessians(idx + first_row), go));
  }
  return codes;
}

// Compensated codes of the matrices `prepare(c)` gives with every α scaled by c. With
// alpha_by_output, c is chosen per row from kAlphaFactors by the row's compensated output error
// (w − ŵ(c))ᵀ H' (w − ŵ(c)) (rows are independent under GPTQ once the steps are fixed), and the
// returned parts carry each row's chosen steps and α; otherwise c = 1.
std::pair<std::vector<Prepared>, torch::Tensor> searched_codes(
    const std::function<std::vector<Prepared>(double)>& prepare, const torch::Tensor& hessian,
    const QuantConfig& cfg, bool search_alpha) {
  std::vector<Prepared> best = prepare(1.0);
  const auto h = split_hessian(best, hessian);
  auto codes = gptq_parts(best, h, cfg);
  if (!search_alpha) return {std::move(best), codes};
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
    for (size_t k = 0; k < parts.size(); ++k) take_rows(best[k], parts[k], better);
  }
  return {std::move(best), codes};
}

// Matrices compensated together (`prepare(c)`: their Prepared parts with α scaled by c) with
// `hessian` over their natural inputs.
std::vector<MatrixResult> compensate_with(
    const std::function<std::vector<Prepared>(double)>& prepare, const torch::Tensor& hessian,
    const QuantConfig& cfg, bool search_alpha) {
  auto [parts, codes] = searched_codes(prepare, hessian, cfg, search_alpha);
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

}  // namespace lmquant
