#include "quant/gptq.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace lmquant {

std::string to_string(GptqOrder o) { return o == GptqOrder::kDiagonal ? "diag" : "natural"; }

GptqOrder parse_gptq_order(const std::string& s) {
  if (s == "natural") return GptqOrder::kNatural;
  if (s == "diag") return GptqOrder::kDiagonal;
  throw std::invalid_argument("unknown GPTQ column order '" + s + "'; valid values: natural, diag");
}

torch::Tensor gptq_hessian(const torch::Tensor& x) {
  auto xd = x.detach().to(torch::kCPU, torch::kDouble).reshape({-1, x.size(-1)});
  return xd.t().mm(xd).mul_(2.0 / static_cast<double>(std::max<int64_t>(1, xd.size(0))));
}

namespace {

void check_shapes(const torch::Tensor& w, const torch::Tensor& step, const torch::Tensor& h) {
  if (w.dim() != 2 || !step.sizes().equals(w.sizes()) || h.dim() != 2 || h.size(0) != w.size(1) ||
      h.size(1) != w.size(1))
    throw std::invalid_argument(
        "gptq: W [rows, n], a step per weight [rows, n] and H [n, n] "
        "expected, got W " +
        std::to_string(w.dim()) + "-d with " + std::to_string(w.numel()) + " weights, H of " +
        std::to_string(h.numel()) + " entries");
}

// H with dead inputs (H_jj <= 0) isolated: H_jj = 1 and no coupling, in double. H is [n, n] or
// a batch [rows, n, n] (each matrix its own dead inputs).
torch::Tensor isolate_dead(const torch::Tensor& hessian) {
  auto h = hessian.detach().to(torch::kCPU, torch::kDouble).clone();
  const auto dead = h.diagonal(0, -2, -1) <= 0;
  if (dead.any().item<bool>()) {
    h.masked_fill_(dead.unsqueeze(-1), 0.0);
    h.masked_fill_(dead.unsqueeze(-2), 0.0);
    h.diagonal(0, -2, -1).masked_fill_(dead, 1.0);
  }
  return h;
}

// The column order of H [n, n] ([n]) or of each H of a batch [rows, n, n] ([rows, n]).
torch::Tensor order_of(const torch::Tensor& h, GptqOrder order) {
  const auto diag = h.diagonal(0, -2, -1);
  if (order == GptqOrder::kNatural)
    return torch::arange(h.size(-1), torch::kLong).expand(diag.sizes()).contiguous();
  return std::get<1>(diag.sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true)).contiguous();
}

// H + λ · mean(diag H) · I, for H [n, n] or each H of a batch [rows, n, n].
torch::Tensor dampened(const torch::Tensor& h, double lambda) {
  auto d = h.clone();
  d.diagonal(0, -2, -1).add_(h.diagonal(0, -2, -1).mean(-1, /*keepdim=*/true) * lambda);
  return d;
}

inline int32_t code_of(double w, double s, int32_t qmax, Grid grid) {
  if (s <= 0) return grid == Grid::kMidrise ? 1 : 0;
  const double q =
      grid == Grid::kMidrise ? 2 * std::nearbyint((w / s - 1) / 2) + 1 : std::nearbyint(w / s);
  return static_cast<int32_t>(std::max<double>(-qmax, std::min<double>(qmax, q)));
}

}  // namespace

torch::Tensor gptq_codes(const torch::Tensor& w, const torch::Tensor& step, int32_t qmax,
                         const torch::Tensor& hessian, const GptqOptions& options) {
  return gptq_codes(w, step,
                    std::vector<int32_t>(static_cast<size_t>(w.dim() == 2 ? w.size(1) : 0), qmax),
                    hessian, options);
}

torch::Tensor gptq_codes(const torch::Tensor& w_in, const torch::Tensor& step_in,
                         const std::vector<int32_t>& qmax_in, const torch::Tensor& hessian,
                         const GptqOptions& options) {
  check_shapes(w_in, step_in, hessian);
  if (static_cast<int64_t>(qmax_in.size()) != w_in.size(1))
    throw std::invalid_argument("gptq: one qmax per column expected");
  const int64_t rows = w_in.size(0), n = w_in.size(1);
  const int64_t B = std::max<int64_t>(1, options.block);
  auto h = isolate_dead(hessian);
  const auto perm = order_of(h, options.order);
  h = h.index_select(0, perm).index_select(1, perm);
  // U: upper Cholesky factor of H⁻¹, H dampened (raised ×10 up to 3 times if not positive
  // definite).
  torch::Tensor U;
  for (int attempt = 0; attempt < 4 && !U.defined(); ++attempt) {
    const double lambda = options.damp * std::pow(10.0, attempt);
    auto [L, info] = torch::linalg_cholesky_ex(dampened(h, lambda));
    if (info.item<int64_t>() != 0) continue;
    auto [L2, info2] = torch::linalg_cholesky_ex(torch::cholesky_inverse(L));
    if (info2.item<int64_t>() != 0) continue;
    U = L2.t().contiguous();
  }
  if (!U.defined())
    throw std::runtime_error("gptq: the Hessian is not positive definite even with dampening " +
                             std::to_string(options.damp * 1000) + " · mean(diag H)");
  std::vector<int32_t> qmax(qmax_in.size());
  const int64_t* order = perm.data_ptr<int64_t>();
  for (int64_t j = 0; j < n; ++j) qmax[j] = qmax_in[static_cast<size_t>(order[j])];
  auto W = w_in.detach().to(torch::kCPU, torch::kDouble).index_select(1, perm).contiguous();
  auto S = step_in.detach().to(torch::kCPU, torch::kDouble).index_select(1, perm).contiguous();
  auto codes = torch::empty({rows, n}, torch::kShort);
  double* wp = W.data_ptr<double>();
  const double* sp = S.data_ptr<double>();
  const double* up = U.data_ptr<double>();
  int16_t* cp = codes.data_ptr<int16_t>();
  at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
    const int64_t nr = r1 - r0;
    auto E = torch::empty({nr, B}, torch::kDouble);
    double* ep = E.data_ptr<double>();
    auto Wc = W.narrow(0, r0, nr);
    for (int64_t i1 = 0; i1 < n; i1 += B) {
      const int64_t i2 = std::min(n, i1 + B), nb = i2 - i1;
      // Rows are independent given H: each row's block stays in L1 while its columns are rounded.
      for (int64_t r = r0; r < r1; ++r) {
        double* wr = wp + r * n;
        double* er = ep + (r - r0) * B - i1;
        for (int64_t j = i1; j < i2; ++j) {
          const double* uj = up + j * n;
          const double s = sp[r * n + j];
          const int32_t q = code_of(wr[j], s, qmax[j], options.grid);
          cp[r * n + j] = static_cast<int16_t>(q);
          const double e = (wr[j] - q * s) / uj[j];
          er[j] = e;
          for (int64_t k = j + 1; k < i2; ++k) wr[k] -= e * uj[k];
        }
      }
      if (i2 < n)
        Wc.narrow(1, i2, n - i2)
            .sub_(E.narrow(1, 0, nb).mm(U.narrow(0, i1, nb).narrow(1, i2, n - i2)));
    }
  });
  // Back to the natural column order.
  return codes.index_select(1, torch::argsort(perm));
}

GptqRowFactors gptq_row_factors(const torch::Tensor& hessians, const GptqOptions& options) {
  if (hessians.dim() != 3 || hessians.size(1) != hessians.size(2))
    throw std::invalid_argument("gptq: a Hessian per row [rows, n, n] expected");
  const int64_t rows = hessians.size(0), n = hessians.size(1);
  auto h = isolate_dead(hessians);
  GptqRowFactors f;
  f.order = order_of(h, options.order);
  // Permuted to each row's order, then reversed (J H J): both in one gather.
  const auto rev = f.order.flip({1});
  h = h.gather(1, rev.unsqueeze(2).expand({rows, n, n}))
          .gather(2, rev.unsqueeze(1).expand({rows, n, n}));
  // Dampened by λ · mean(diag H_r); λ raised ×10 up to 3 times for rows that fail.
  f.u = torch::zeros({rows, n, n}, torch::kDouble);
  auto done = torch::zeros({rows}, torch::kBool);
  const auto eye = torch::eye(n, torch::kDouble);
  for (int attempt = 0; attempt < 4; ++attempt) {
    const auto todo = (~done).nonzero().view({-1});
    if (todo.numel() == 0) break;
    const double lambda = options.damp * std::pow(10.0, attempt);
    auto [L, info] = torch::linalg_cholesky_ex(dampened(h.index_select(0, todo), lambda));
    const auto ok = (info == 0).nonzero().view({-1});
    if (ok.numel() == 0) continue;
    const auto linv =
        torch::linalg_solve_triangular(L.index_select(0, ok), eye.expand({ok.numel(), n, n}),
                                       /*upper=*/false);
    const auto at = todo.index_select(0, ok);
    f.u.index_copy_(0, at, linv.flip({1, 2}));
    done.index_fill_(0, at, true);
  }
  if (!done.all().item<bool>())
    throw std::runtime_error(
        "gptq: a row's Hessian is not positive definite even with "
        "dampening " +
        std::to_string(options.damp * 1000) + " · mean(diag H)");
  f.u = f.u.contiguous();
  return f;
}

torch::Tensor gptq_row_codes(const torch::Tensor& w_in, const torch::Tensor& step_in,
                             const std::vector<int32_t>& qmax_in, const GptqRowFactors& f,
                             Grid grid) {
  const bool shared = f.u.dim() == 3 && f.u.size(0) == 1;  // one factor for every row
  if (w_in.dim() != 2 || !step_in.sizes().equals(w_in.sizes()) || f.u.dim() != 3 ||
      (!shared && f.u.size(0) != w_in.size(0)) || f.u.size(1) != w_in.size(1))
    throw std::invalid_argument(
        "gptq: W [rows, n], a step per weight [rows, n] and factors per row [rows, n, n] or one "
        "[1, n, n] expected");
  if (static_cast<int64_t>(qmax_in.size()) != w_in.size(1))
    throw std::invalid_argument("gptq: one qmax per column expected");
  const int64_t rows = w_in.size(0), n = w_in.size(1);
  auto codes = torch::empty({rows, n}, torch::kShort);
  if (rows == 0) return codes;
  const auto order_all = shared ? f.order.expand({rows, n}) : f.order;
  auto W = w_in.detach().to(torch::kCPU, torch::kDouble).gather(1, order_all).contiguous();
  auto S = step_in.detach().to(torch::kCPU, torch::kDouble).gather(1, order_all).contiguous();
  double* wp = W.data_ptr<double>();
  const double* sp = S.data_ptr<double>();
  const double* up = f.u.data_ptr<double>();
  const int64_t* pp = f.order.data_ptr<int64_t>();
  int16_t* cp = codes.data_ptr<int16_t>();
  at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      double* wr = wp + r * n;
      const double* ur = shared ? up : up + r * n * n;
      const int64_t* order = shared ? pp : pp + r * n;
      for (int64_t j = 0; j < n; ++j) {
        const double* uj = ur + j * n;
        const double s = sp[r * n + j];
        const int32_t q = code_of(wr[j], s, qmax_in[static_cast<size_t>(order[j])], grid);
        cp[r * n + order[j]] = static_cast<int16_t>(q);
        const double e = (wr[j] - q * s) / uj[j];
        for (int64_t k = j + 1; k < n; ++k) wr[k] -= e * uj[k];
      }
    }
  });
  return codes;
}

torch::Tensor gptq_row_codes(const torch::Tensor& w, const torch::Tensor& step,
                             const std::vector<int32_t>& qmax, const torch::Tensor& hessians,
                             const GptqOptions& options) {
  return gptq_row_codes(w, step, qmax, gptq_row_factors(hessians, options), options.grid);
}

torch::Tensor reference_gptq_codes(const torch::Tensor& w_in, const torch::Tensor& step_in,
                                   int32_t qmax, const torch::Tensor& hessian,
                                   const GptqOptions& options) {
  check_shapes(w_in, step_in, hessian);
  const int64_t rows = w_in.size(0), n = w_in.size(1);
  auto h = isolate_dead(hessian);
  const auto perm = order_of(h, options.order);
  auto hinv_t = torch::inverse(dampened(h, options.damp));
  std::vector<double> hinv(hinv_t.data_ptr<double>(), hinv_t.data_ptr<double>() + n * n);
  auto W = w_in.to(torch::kDouble).contiguous();
  auto S = step_in.to(torch::kDouble).contiguous();
  std::vector<double> w(W.data_ptr<double>(), W.data_ptr<double>() + rows * n);
  const double* s = S.data_ptr<double>();
  std::vector<int16_t> c(static_cast<size_t>(rows * n), 0);
  std::vector<bool> done(static_cast<size_t>(n), false);
  const int64_t* order = perm.data_ptr<int64_t>();
  for (int64_t t = 0; t < n; ++t) {
    const int64_t j = order[t];
    const double hjj = hinv[j * n + j];
    for (int64_t r = 0; r < rows; ++r) {
      const int32_t q = code_of(w[r * n + j], s[r * n + j], qmax, options.grid);
      c[r * n + j] = static_cast<int16_t>(q);
      const double err = w[r * n + j] - q * s[r * n + j];
      // OBS: δw_k = −err · [H⁻¹]_kj / [H⁻¹]_jj for the columns not yet rounded.
      for (int64_t k = 0; k < n; ++k)
        if (!done[k] && k != j) w[r * n + k] -= err * hinv[k * n + j] / hjj;
    }
    done[j] = true;
    // Remove column j from the inverse: H⁻¹ ← H⁻¹ − H⁻¹_{:,j} H⁻¹_{j,:} / H⁻¹_jj.
    std::vector<double> col(static_cast<size_t>(n)), row(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) col[k] = hinv[k * n + j], row[k] = hinv[j * n + k];
    for (int64_t a = 0; a < n; ++a)
      for (int64_t b = 0; b < n; ++b) hinv[a * n + b] -= col[a] * row[b] / hjj;
  }
  return torch::from_blob(c.data(), {rows, n}, torch::kShort).clone();
}

}  // namespace lmquant
