#include "lm/nll.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "util/fast_math.h"

namespace lmquant {

// 16 running maxima, so the compiler vectorises it without -ffast-math (a single running max is
// a reduction it may not reorder).
LMQ_INLINE float row_max_body(const float* z, int64_t n) {
  float acc[16];
  for (float& a : acc) a = z[0];
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int64_t u = 0; u < 16; ++u) acc[u] = z[j + u] > acc[u] ? z[j + u] : acc[u];
  float m = z[0];
  for (; j < n; ++j) m = z[j] > m ? z[j] : m;
  for (float a : acc) m = a > m ? a : m;
  return m;
}
LMQ_DISPATCH(float, row_max, (const float* z, int64_t n), (z, n), row_max_body)

// out[j] = exp(z[j] - m) (out may be null); returns Σ_j exp(z[j] - m).
LMQ_INLINE float exp_sum_body(const float* z, int64_t n, float m, float* out) {
  float acc[16] = {0};
  int64_t j = 0;
  auto body = [&](int64_t k) { return fast_exp(z[k] - m); };
  if (out) {
    for (; j + 16 <= n; j += 16)
      for (int64_t u = 0; u < 16; ++u) acc[u] += (out[j + u] = body(j + u));
    float s = 0;
    for (; j < n; ++j) s += (out[j] = body(j));
    for (float a : acc) s += a;
    return s;
  }
  for (; j + 16 <= n; j += 16)
    for (int64_t u = 0; u < 16; ++u) acc[u] += body(j + u);
  float s = 0;
  for (; j < n; ++j) s += body(j);
  for (float a : acc) s += a;
  return s;
}
LMQ_DISPATCH(float, exp_sum, (const float* z, int64_t n, float m, float* out), (z, n, m, out),
             exp_sum_body)

namespace {

bool use_kernel(const torch::Tensor& logits) {
  return logits.device().is_cpu() && logits.scalar_type() == torch::kFloat && logits.dim() == 2;
}

void check(const torch::Tensor& logits, const torch::Tensor& targets) {
  TORCH_CHECK(logits.dim() == 2 && targets.dim() == 1 && logits.size(0) == targets.size(0),
              "nll: logits [N, V] and targets [N] expected");
}

}  // namespace

torch::Tensor row_nll(const torch::Tensor& logits_in, const torch::Tensor& targets_in) {
  check(logits_in, targets_in);
  if (!use_kernel(logits_in)) {
    auto lp = torch::log_softmax(logits_in.to(torch::kDouble), 1);
    return -lp.gather(1, targets_in.view({-1, 1})).view({-1});
  }
  auto logits = logits_in.contiguous();
  auto targets = targets_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t N = logits.size(0), V = logits.size(1);
  auto out = torch::empty({N}, torch::kDouble);
  const float* z = logits.data_ptr<float>();
  const int64_t* y = targets.data_ptr<int64_t>();
  double* o = out.data_ptr<double>();
  at::parallel_for(0, N, 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* row = z + r * V;
      TORCH_CHECK(y[r] >= 0 && y[r] < V, "target id ", y[r], " outside the vocabulary of ", V);
      const float m = row_max(row, V);
      const double s = exp_sum(row, V, m, nullptr);
      o[r] = static_cast<double>(m) + std::log(s) - static_cast<double>(row[y[r]]);
    }
  });
  return out;
}

double sum_nll(const torch::Tensor& logits, const torch::Tensor& targets) {
  return row_nll(logits, targets).sum().item<double>();
}

double blocked_nll(int64_t N, int64_t V, const torch::Tensor& targets_in, int64_t block,
                   const BlockLogits& logits, double* rows) {
  TORCH_CHECK(targets_in.dim() == 1 && targets_in.size(0) == N,
              "blocked_nll: targets [N] expected");
  TORCH_CHECK(block >= 1, "blocked_nll: block must be >= 1");
  const auto targets = targets_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t* y = targets.data_ptr<int64_t>();
  for (int64_t r = 0; r < N; ++r)
    TORCH_CHECK(y[r] >= 0 && y[r] < V, "target id ", y[r], " outside the vocabulary of ", V);
  const int64_t blocks = (V + block - 1) / block;
  // One run of blocks per thread; each keeps (m, s) per row and the target logits it meets.
  const int64_t runs = std::min<int64_t>(blocks, std::max(1, at::get_num_threads()));
  std::vector<float> m(static_cast<size_t>(runs * N), -INFINITY);
  std::vector<double> s(static_cast<size_t>(runs * N), 0.0);
  std::vector<float> zy(static_cast<size_t>(N), 0.0f);
  at::parallel_for(0, runs, 1, [&](int64_t rb, int64_t re) {
    const int64_t ld = std::min(block, V);
    std::vector<float> buf(static_cast<size_t>(N * ld));
    for (int64_t run = rb; run < re; ++run) {
      float* rm = m.data() + run * N;
      double* rs = s.data() + run * N;
      for (int64_t k = blocks * run / runs; k < blocks * (run + 1) / runs; ++k) {
        const int64_t j0 = k * block, n = std::min(block, V - j0);
        logits(j0, n, buf.data(), ld);
        for (int64_t r = 0; r < N; ++r) {
          const float* row = buf.data() + r * ld;
          if (y[r] >= j0 && y[r] < j0 + n) zy[static_cast<size_t>(r)] = row[y[r] - j0];
          const float bm = row_max(row, n);
          if (bm > rm[r]) {
            rs[r] = rs[r] * std::exp(static_cast<double>(rm[r]) - bm);  // 0 · e^-inf = 0
            rm[r] = bm;
          }
          rs[r] += exp_sum(row, n, rm[r], nullptr);
        }
      }
    }
  });
  double total = 0;
  for (int64_t r = 0; r < N; ++r) {
    float mr = -INFINITY;
    for (int64_t run = 0; run < runs; ++run) mr = std::max(mr, m[static_cast<size_t>(run * N + r)]);
    double sr = 0;
    for (int64_t run = 0; run < runs; ++run) {
      const size_t i = static_cast<size_t>(run * N + r);
      if (s[i] > 0) sr += s[i] * std::exp(static_cast<double>(m[i]) - mr);
    }
    const double row =
        static_cast<double>(mr) + std::log(sr) - static_cast<double>(zy[static_cast<size_t>(r)]);
    if (rows) rows[r] = row;
    total += row;
  }
  return total;
}

double decoder_nll(const torch::Tensor& h_in, const torch::Tensor& weight_in,
                   const torch::Tensor& bias_in, const torch::Tensor& targets, int64_t block) {
  TORCH_CHECK(h_in.dim() == 2 && weight_in.dim() == 2 && bias_in.dim() == 1 && targets.dim() == 1 &&
                  h_in.size(0) == targets.size(0) && h_in.size(1) == weight_in.size(1) &&
                  bias_in.size(0) == weight_in.size(0),
              "decoder_nll: h [N, H], weight [V, H], bias [V], targets [N] expected");
  const bool cpu_float = h_in.device().is_cpu() && weight_in.device().is_cpu() &&
                         h_in.scalar_type() == torch::kFloat &&
                         weight_in.scalar_type() == torch::kFloat &&
                         bias_in.scalar_type() == torch::kFloat;
  if (!cpu_float) return sum_nll(torch::addmm(bias_in, h_in, weight_in.t()), targets);
  // Detached: the blocks run on OpenMP worker threads, where LibTorch's grad mode (thread-local)
  // is on whatever the caller's guard says.
  const auto h = h_in.detach().contiguous(), weight = weight_in.detach().contiguous(),
             bias = bias_in.detach().contiguous();
  const int64_t N = h.size(0), V = weight.size(0);
  return blocked_nll(N, V, targets, block, [&](int64_t j0, int64_t n, float* z, int64_t ld) {
    auto out = torch::from_blob(z, {N, n}, {ld, 1}, torch::kFloat);
    // Inside parallel_for LibTorch runs the product on this thread alone.
    torch::addmm_out(out, bias.narrow(0, j0, n), h, weight.narrow(0, j0, n).t());
  });
}

namespace {

class FusedCrossEntropy : public torch::autograd::Function<FusedCrossEntropy> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx,
                               const torch::Tensor& logits_in, const torch::Tensor& targets_in) {
    auto logits = logits_in.contiguous();
    auto targets = targets_in.to(torch::kLong).contiguous();
    const int64_t N = logits.size(0), V = logits.size(1);
    auto grad = logits;  // in place: each row is read (max, exp) before it is overwritten
    std::vector<double> nll(static_cast<size_t>(N));
    const float* z = logits.data_ptr<float>();
    float* g = grad.data_ptr<float>();
    const int64_t* y = targets.data_ptr<int64_t>();
    const float invN = 1.0f / static_cast<float>(N);
    at::parallel_for(0, N, 4, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const float* row = z + r * V;
        float* grow = g + r * V;
        TORCH_CHECK(y[r] >= 0 && y[r] < V, "target id ", y[r], " outside the vocabulary of ", V);
        const float zy = row[y[r]];  // read before the row is overwritten
        const float m = row_max(row, V);
        const float s = exp_sum(row, V, m, grow);
        nll[static_cast<size_t>(r)] = m + std::log(static_cast<double>(s)) - zy;
        const float k = invN / s;
        for (int64_t j = 0; j < V; ++j) grow[j] *= k;
        grow[y[r]] -= invN;
      }
    });
    double total = 0;
    for (double v : nll) total += v;
    ctx->save_for_backward({grad});
    return torch::tensor(total / static_cast<double>(N), logits.options());
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_out) {
    auto grad = ctx->get_saved_variables()[0];
    return {grad.mul_(grad_out[0]), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor fused_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  check(logits, targets);
  if (!use_kernel(logits)) return torch::cross_entropy_loss(logits, targets);
  return FusedCrossEntropy::apply(logits, targets);
}

}  // namespace lmquant
