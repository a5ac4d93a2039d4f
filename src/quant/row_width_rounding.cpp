#include "quant/row_width_rounding.h"

#include <algorithm>
#include <optional>

#include "quant/rounding.h"
#include "quant/row_alpha.h"
#include "quant/tied_objective.h"
#include "quant/uniform_quantizer.h"
#include "util/runtime.h"

namespace lmquant {

int64_t row_block(int64_t rows, int64_t cols) {
  // ~1M weights a block: the widths' preparations, codes and errors of a block are ~20 bytes a
  // weight each, and their Fisher sensitivities 2 KB a row (wt2-lstm200's 33,278 × 200 decoder at
  // five widths held 0.7 GB as one block; its seven blocks of 5,242 rows ~0.1 GB).
  return std::clamp<int64_t>((int64_t{1} << 20) / std::max<int64_t>(1, cols), 1,
                             std::max<int64_t>(1, rows));
}

MatrixResult quantize_rows(const MatrixPlan& plan, const torch::Tensor& w_in,
                           const QuantConfig& cfg, const RowData& data,
                           const torch::Tensor& hessian, const DecoderFisher* fisher,
                           int64_t block) {
  const NamedMatrix& m = plan.matrix;
  const auto& widths = cfg.row_widths;
  const size_t K = widths.size();
  // A 0-bit row is the zero row (quant/row_widths.h): no preparation, codes 0, step 0, its error
  // the row itself. The widths from k0 on are quantized.
  const size_t k0 = widths.front() == 0 ? 1 : 0;
  const auto w = w_in.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t rows = w.size(0);
  auto at_width = [&](int b) {
    QuantConfig cb = cfg;
    cb.matrix_bits[m.name] = b;
    return cb;
  };
  // OCS plans its splits over the whole matrix: one block then.
  if (cfg.method == Method::kOcs)
    block = rows;
  else if (block <= 0)
    block = row_block(rows, w.size(1));
  const bool one_block = block >= rows;
  // Per width, every row's codes (int8: row widths are at most 8 bits), group steps and α; the
  // per-row costs of every width. Only these outlive a block.
  std::vector<torch::Tensor> codes(K), group_steps(K);
  std::vector<std::vector<float>> alphas(K);
  auto cost = torch::empty({static_cast<int64_t>(K), rows}, torch::kDouble);
  std::optional<DecoderFisher> basis_fisher;  // the Fisher in the codes' basis, rotated once
  FamilyFactors families;                     // its families' factorisations, for every block
  Prepared layout;    // the widest width's preparation of the last block: OCS plan, rotation, G
  torch::Tensor lse;  // the decoder's log-normalizers, for blocks of its rows
  if (!one_block && (plan.sensitivity == "fisher" || plan.sensitivity == "tied"))
    lse = decoder_log_normalizer(data.decoder_h, w, data.decoder_bias);
  // The α factors each row is tried with (quant/row_alpha.h), and the one each row and width took.
  const std::vector<double> factors =
      plan.row_alpha ? cfg.row_alpha_factors : std::vector<double>{1.0};
  auto chosen_factor = plan.row_alpha
                           ? torch::empty({static_cast<int64_t>(K - k0), rows}, torch::kDouble)
                           : torch::Tensor();
  for (int64_t r0 = 0; r0 < rows; r0 += block) {
    // The previous block's transients, freed at its end, go back to the system (util/runtime.h);
    // after the last block quantize_model's stage does it.
    if (r0 > 0) release_free_memory();
    const int64_t nb = std::min(block, rows - r0);
    const auto wb = w.narrow(0, r0, nb);
    // Each row's cost for its errors at each width (quant/row_widths.h; the tied objective's for
    // a tied row).
    const auto freq = data.freq.defined() ? data.freq.narrow(0, r0, nb) : torch::Tensor();
    auto price = [&](const std::vector<torch::Tensor>& errors) {
      if (plan.sensitivity == "fisher" || plan.sensitivity == "tied") {
        const auto bias = data.decoder_bias.narrow(0, r0, nb);
        auto c = one_block ? fisher_sensitivity(errors, data.decoder_h, wb, bias)
                           : fisher_sensitivity_rows(errors, data.decoder_h, wb, bias, lse);
        if (plan.sensitivity == "tied") c += tied_embedding_sensitivity(errors, freq, data.moment);
        return c;
      }
      return frequency_sensitivity(errors, freq,
                                   plan.sensitivity == "feed" ? data.feed : torch::Tensor());
    };
    // The block's rows at every quantized width with each α scaled by f, priced.
    auto at_factor = [&](double f) {
      RowCandidates c;
      if (fisher) {  // every width at once: each sub-block of rows' Hessians factored once
        for (size_t k = k0; k < K; ++k)
          c.parts.push_back(prepare_matrix(m, wb, at_width(widths[k]), f, r0));
        if (!basis_fisher) basis_fisher = in_basis_of(*fisher, c.parts.front());
        c.codes = fisher_codes(c.parts, *basis_fisher, cfg, r0, &families);
      } else {
        for (size_t k = k0; k < K; ++k) {
          const QuantConfig cb = at_width(widths[k]);
          if (hessian.defined()) {
            auto [parts, codes] = searched_codes(
                [&](double g) {
                  return std::vector<Prepared>{prepare_matrix(m, wb, cb, f * g, r0)};
                },
                hessian, cfg, plan.alpha_by_output);
            c.parts.push_back(std::move(parts.front()));
            c.codes.push_back(codes);
          } else {
            c.parts.push_back(prepare_matrix(m, wb, cb, f, r0));
            c.codes.push_back(UniformQuantizer(widths[k], cfg.grid)
                                  .codes(c.parts.back().split, c.parts.back().step));
          }
        }
      }
      std::vector<torch::Tensor> errors;
      for (size_t k = 0; k < c.parts.size(); ++k) {
        const Prepared& p = c.parts[k];
        errors.push_back(p.w -
                         to_input_basis(c.codes[k].to(torch::kFloat) * p.step, p.q.plan, p.rot));
      }
      c.cost = price(errors);
      c.factor = torch::full({static_cast<int64_t>(K - k0), nb}, f, torch::kDouble);
      return c;
    };
    RowCandidates best = at_factor(factors.front());
    for (size_t i = 1; i < factors.size(); ++i) keep_cheaper_rows(best, at_factor(factors[i]));
    if (plan.row_alpha) chosen_factor.narrow(1, r0, nb).copy_(best.factor);
    std::vector<Prepared> ps = std::move(best.parts);
    std::vector<torch::Tensor> cs = std::move(best.codes);
    torch::Tensor c = best.cost;
    if (k0 == 1) {  // the zero row: its error is the row, its codes, steps and α are 0
      c = torch::cat({price({ps.front().w}), c});
      ps.insert(ps.begin(), ps.front());
      cs.insert(cs.begin(), torch::zeros_like(cs.front()));
      ps.front().q.step = torch::zeros_like(ps.front().q.step);
      ps.front().alpha.assign(ps.front().alpha.size(), 0.0f);
    }
    cost.narrow(1, r0, nb).copy_(c);
    for (size_t k = 0; k < K; ++k) {
      if (r0 == 0) {
        codes[k] = torch::empty({rows, cs[k].size(1)}, torch::kChar);
        group_steps[k] = torch::empty({rows, ps[k].q.step.size(1)});
      }
      codes[k].narrow(0, r0, nb).copy_(cs[k]);
      group_steps[k].narrow(0, r0, nb).copy_(ps[k].q.step);
      alphas[k].insert(alphas[k].end(), ps[k].alpha.begin(), ps[k].alpha.end());
    }
    layout = std::move(ps.back());
  }
  const RowAllocation a = allocate_row_widths(cost, widths, plan.row_budget);
  // Row r from the quantization at its width: codes, group steps, α.
  Prepared out = std::move(layout);
  if (!one_block) out.split = out.rot.defined() ? w.mm(out.rot) : w;  // (OCS: one block)
  out.w = w;
  out.bits = widths.back();
  out.row_bits = a.bits;
  const int64_t per_row = group_steps.back().size(1);
  auto all_codes = torch::empty({rows, codes.back().size(1)}, torch::kShort);
  out.q.step = torch::empty({rows, per_row});
  out.alpha.assign(static_cast<size_t>(rows * per_row), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const size_t k = static_cast<size_t>(
        std::find(widths.begin(), widths.end(), a.bits[static_cast<size_t>(r)]) - widths.begin());
    all_codes[r].copy_(codes[k][r]);
    out.q.step[r].copy_(group_steps[k][r]);
    std::copy_n(alphas[k].begin() + r * per_row, per_row, out.alpha.begin() + r * per_row);
  }
  out.step = steps_per_weight(out.q.step, out.q.group_size, rows, all_codes.size(1)).contiguous();
  MatrixResult r = finish_matrix(std::move(out), all_codes);
  if (plan.row_alpha)
    r.report.rows_at_alpha_factor = rows_at_factor(
        chosen_factor,
        std::vector<int>(widths.begin() + static_cast<std::ptrdiff_t>(k0), widths.end()), a.bits);
  return r;
}

}  // namespace lmquant
