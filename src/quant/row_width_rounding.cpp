#include "quant/row_width_rounding.h"

#include <algorithm>

#include "quant/rounding.h"
#include "quant/tied_objective.h"
#include "quant/uniform_quantizer.h"

namespace lmquant {

MatrixResult quantize_rows(const MatrixPlan& plan, const torch::Tensor& w, const QuantConfig& cfg,
                           const RowData& data, const torch::Tensor& hessian,
                           const DecoderFisher* fisher) {
  const NamedMatrix& m = plan.matrix;
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
            cfg, plan.alpha_by_output);
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
  torch::Tensor cost;
  if (plan.sensitivity == "fisher")
    cost = fisher_sensitivity(errors, data.decoder_h, ps.front().w, data.decoder_bias);
  else if (plan.sensitivity == "tied")
    cost = tied_sensitivity(errors, data.decoder_h, ps.front().w, data.decoder_bias, data.freq,
                            data.moment);
  else
    cost = frequency_sensitivity(errors, data.freq,
                                 plan.sensitivity == "feed" ? data.feed : torch::Tensor());
  const RowAllocation a = allocate_row_widths(cost, cfg.row_widths, plan.row_budget);
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

}  // namespace lmquant
