#include "lm/divergence.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/fast_math.h"

namespace lmquant {
namespace {

// The first index holding v.
int64_t first_index_of(const float* z, int64_t n, float v) {
  for (int64_t j = 0; j < n; ++j)
    if (z[j] == v) return j;
  return 0;
}

// Σ_j e^(zp_j − m) into *s and Σ_j e^(zp_j − m)(zp_j − zq_j) into *a (float partial sums, added
// in double by the caller).
LMQ_INLINE void exp_sums_body(const float* zp, const float* zq, int64_t n, float m, float* s,
                              float* a) {
  float sa[16] = {0}, aa[16] = {0};
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int64_t u = 0; u < 16; ++u) {
      const float e = fast_exp(zp[j + u] - m);
      sa[u] += e;
      aa[u] += e * (zp[j + u] - zq[j + u]);
    }
  float ss = 0, as = 0;
  for (; j < n; ++j) {
    const float e = fast_exp(zp[j] - m);
    ss += e;
    as += e * (zp[j] - zq[j]);
  }
  for (int u = 0; u < 16; ++u) ss += sa[u], as += aa[u];
  *s = ss;
  *a = as;
}
LMQ_DISPATCH(void, exp_sums,
             (const float* zp, const float* zq, int64_t n, float m, float* s, float* a),
             (zp, zq, n, m, s, a), exp_sums_body)

// One run's running state for one row.
struct RowState {
  float mp = -INFINITY, mq = -INFINITY;  // running maxima (also the argmax values)
  double sp = 0, ap = 0, sq = 0;         // Σ e^(zp−mp), Σ e^(zp−mp)(zp−zq), Σ e^(zq−mq)
  int64_t ip = -1, iq = -1;              // argmax indices
  float zpy = 0, zqy = 0;                // target logits (the run holding the target)
};

}  // namespace

PairedNll paired_blocked_nll(int64_t N, int64_t V, const torch::Tensor& targets_in, int64_t block,
                             const BlockLogits& p, const BlockLogits& q, double* kl_rows,
                             double* nll_q_rows) {
  TORCH_CHECK(targets_in.dim() == 1 && targets_in.size(0) == N,
              "paired_blocked_nll: targets [N] expected");
  TORCH_CHECK(block >= 1, "paired_blocked_nll: block must be >= 1");
  const auto targets = targets_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* y = targets.data_ptr<int64_t>();
  for (int64_t r = 0; r < N; ++r)
    TORCH_CHECK(y[r] >= 0 && y[r] < V, "target id ", y[r], " outside the vocabulary of ", V);
  const int64_t blocks = (V + block - 1) / block;
  const int64_t runs = std::min<int64_t>(blocks, std::max(1, at::get_num_threads()));
  std::vector<RowState> st(static_cast<size_t>(runs * N));
  std::vector<int> has_target(static_cast<size_t>(runs * N), 0);
  at::parallel_for(0, runs, 1, [&](int64_t rb, int64_t re) {
    const int64_t ld = std::min(block, V);
    std::vector<float> bp(static_cast<size_t>(N * ld)), bq(static_cast<size_t>(N * ld));
    for (int64_t run = rb; run < re; ++run) {
      RowState* rs = st.data() + run * N;
      for (int64_t k = blocks * run / runs; k < blocks * (run + 1) / runs; ++k) {
        const int64_t j0 = k * block, n = std::min(block, V - j0);
        p(j0, n, bp.data(), ld);
        q(j0, n, bq.data(), ld);
        for (int64_t r = 0; r < N; ++r) {
          const float* zp = bp.data() + r * ld;
          const float* zq = bq.data() + r * ld;
          RowState& x = rs[r];
          if (y[r] >= j0 && y[r] < j0 + n) {
            x.zpy = zp[y[r] - j0];
            x.zqy = zq[y[r] - j0];
            has_target[static_cast<size_t>(run * N + r)] = 1;
          }
          const float bmp = row_max(zp, n), bmq = row_max(zq, n);
          if (bmp > x.mp) {  // strictly greater: an earlier index wins a tie
            const double f = std::exp(static_cast<double>(x.mp) - bmp);  // 0 · e^-inf = 0
            x.sp *= f;
            x.ap *= f;
            x.mp = bmp;
            x.ip = j0 + first_index_of(zp, n, bmp);
          }
          if (bmq > x.mq) {
            x.sq *= std::exp(static_cast<double>(x.mq) - bmq);
            x.mq = bmq;
            x.iq = j0 + first_index_of(zq, n, bmq);
          }
          float s, a;
          exp_sums(zp, zq, n, x.mp, &s, &a);
          x.sp += s;
          x.ap += a;
          x.sq += exp_sum(zq, n, x.mq, nullptr);
        }
      }
    }
  });
  PairedNll out;
  for (int64_t r = 0; r < N; ++r) {
    RowState t;  // the merged state; runs in block order, so the first maximum wins ties
    for (int64_t run = 0; run < runs; ++run) {
      const RowState& x = st[static_cast<size_t>(run * N + r)];
      if (has_target[static_cast<size_t>(run * N + r)]) t.zpy = x.zpy, t.zqy = x.zqy;
      if (x.mp > t.mp) {
        const double f = std::exp(static_cast<double>(t.mp) - x.mp);
        t.sp = t.sp * f + x.sp;
        t.ap = t.ap * f + x.ap;
        t.mp = x.mp;
        t.ip = x.ip;
      } else if (x.sp > 0) {
        const double f = std::exp(static_cast<double>(x.mp) - t.mp);
        t.sp += x.sp * f;
        t.ap += x.ap * f;
      }
      if (x.mq > t.mq) {
        t.sq = t.sq * std::exp(static_cast<double>(t.mq) - x.mq) + x.sq;
        t.mq = x.mq;
        t.iq = x.iq;
      } else if (x.sq > 0) {
        t.sq += x.sq * std::exp(static_cast<double>(x.mq) - t.mq);
      }
    }
    const double lse_p = t.mp + std::log(t.sp), lse_q = t.mq + std::log(t.sq);
    const double kl = t.ap / t.sp - lse_p + lse_q;
    const double nq = lse_q - t.zqy;
    out.nll_p += lse_p - t.zpy;
    out.nll_q += nq;
    out.kl += kl;
    out.top1_agree += t.ip == t.iq ? 1 : 0;
    if (kl_rows) kl_rows[r] = kl;
    if (nll_q_rows) nll_q_rows[r] = nq;
  }
  return out;
}

PairedNll paired_nll_dense(const torch::Tensor& zp_in, const torch::Tensor& zq_in,
                           const torch::Tensor& targets, double* kl_rows, double* nll_q_rows) {
  TORCH_CHECK(zp_in.dim() == 2 && zp_in.sizes() == zq_in.sizes() && targets.dim() == 1 &&
                  targets.size(0) == zp_in.size(0),
              "paired_nll_dense: logits [N, V] (both) and targets [N] expected");
  const auto lp = torch::log_softmax(zp_in.to(torch::kDouble), 1);
  const auto lq = torch::log_softmax(zq_in.to(torch::kDouble), 1);
  const auto y = targets.to(lp.device(), torch::kLong).view({-1, 1});
  const auto kl = (lp.exp() * (lp - lq)).sum(1).cpu().contiguous();
  const auto nq = (-lq.gather(1, y)).view({-1}).cpu().contiguous();
  const auto np = (-lp.gather(1, y)).view({-1}).cpu();
  // argmax: the first maximum (torch's CPU argmax returns the first; compare values to be sure).
  const auto ap = std::get<1>(zp_in.max(1)).cpu(), aq = std::get<1>(zq_in.max(1)).cpu();
  PairedNll out;
  out.nll_p = np.sum().item<double>();
  out.nll_q = nq.sum().item<double>();
  out.kl = kl.sum().item<double>();
  out.top1_agree = (ap == aq).sum().item<int64_t>();
  const int64_t N = zp_in.size(0);
  for (int64_t r = 0; r < N; ++r) {
    if (kl_rows) kl_rows[r] = kl.data_ptr<double>()[r];
    if (nll_q_rows) nll_q_rows[r] = nq.data_ptr<double>()[r];
  }
  return out;
}

BlockLogits float_decoder_logits(const torch::Tensor& h_in, const torch::Tensor& weight_in,
                                 const torch::Tensor& bias_in) {
  TORCH_CHECK(h_in.dim() == 2 && weight_in.dim() == 2 && bias_in.dim() == 1 &&
                  h_in.size(1) == weight_in.size(1) && bias_in.size(0) == weight_in.size(0),
              "float_decoder_logits: h [N, H], weight [V, H], bias [V] expected");
  // Detached: the blocks run on OpenMP worker threads, where grad mode is thread-local.
  auto h = h_in.detach().to(torch::kFloat).contiguous();
  auto w = weight_in.detach().to(torch::kFloat).contiguous();
  auto b = bias_in.detach().to(torch::kFloat).contiguous();
  const int64_t N = h.size(0);
  return [h, w, b, N](int64_t j0, int64_t n, float* z, int64_t ld) {
    auto out = torch::from_blob(z, {N, n}, {ld, 1}, torch::kFloat);
    torch::addmm_out(out, b.narrow(0, j0, n), h, w.narrow(0, j0, n).t());
  };
}

}  // namespace lmquant
