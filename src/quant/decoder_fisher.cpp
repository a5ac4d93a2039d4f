#include "quant/decoder_fisher.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace lmquant {

DecoderFisher::DecoderFisher(const torch::Tensor& h, const torch::Tensor& w,
                             const torch::Tensor& bias, int64_t keep) {
  if (h.dim() != 2 || w.dim() != 2 || h.size(1) != w.size(1) || bias.dim() != 1 ||
      bias.size(0) != w.size(0) || h.size(0) < 1)
    throw std::invalid_argument("decoder Fisher: h [N, n], W [V, n] and bias [V] expected");
  if (keep < 1)
    throw std::invalid_argument("decoder Fisher: keep at least 1 row per position, got " +
                                std::to_string(keep));
  torch::NoGradGuard guard;
  h_ = h.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const auto wf = w.detach().to(torch::kCPU, torch::kFloat);
  const auto bf = bias.detach().to(torch::kCPU, torch::kFloat);
  const int64_t N = h_.size(0), V = wf.size(0);
  keep = std::min(keep, V);
  auto total = torch::zeros({V}, torch::kDouble);
  std::vector<torch::Tensor> rows, pos, weight;
  constexpr int64_t kChunk = 512;
  for (int64_t t0 = 0; t0 < N; t0 += kChunk) {
    const int64_t nt = std::min(kChunk, N - t0);
    auto p = torch::softmax(torch::addmm(bf, h_.narrow(0, t0, nt), wf.t()), 1);
    auto a = p * (1 - p);
    total += a.sum(0).to(torch::kDouble);
    auto [top, idx] = a.topk(keep, 1);
    rows.push_back(idx.reshape(-1));
    pos.push_back(
        torch::arange(t0, t0 + nt, torch::kLong).unsqueeze(1).expand({nt, keep}).reshape(-1));
    weight.push_back(top.reshape(-1));
  }
  auto r = torch::cat(rows);
  const auto order = std::get<1>(r.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
  pos_ = torch::cat(pos).index_select(0, order).contiguous();
  weight_ = torch::cat(weight).index_select(0, order).contiguous();
  r = r.index_select(0, order);
  offsets_ = torch::zeros({V + 1}, torch::kLong);
  offsets_.narrow(0, 1, V).copy_(torch::bincount(r, {}, V).cumsum(0));
  const auto kept = torch::zeros({V}, torch::kDouble).index_add_(0, r, weight_.to(torch::kDouble));
  tail_ = (total - kept).clamp_min(0);
  const double all = total.sum().item<double>();
  kept_share_ = all > 0 ? kept.sum().item<double>() / all : 1.0;
  const auto hd = h_.to(torch::kDouble);
  hbar_ = hd.t().mm(hd) / static_cast<double>(N);
}

torch::Tensor DecoderFisher::hessians(int64_t r0, int64_t r1) const {
  if (r0 < 0 || r1 > rows() || r0 > r1)
    throw std::invalid_argument("decoder Fisher: rows [" + std::to_string(r0) + ", " +
                                std::to_string(r1) + ") outside [0, " + std::to_string(rows()) +
                                ")");
  return hessians(torch::arange(r0, r1, torch::kLong));
}

torch::Tensor DecoderFisher::hessians(const torch::Tensor& which) const {
  if (which.dim() != 1 || which.scalar_type() != torch::kLong ||
      (which.numel() > 0 &&
       (which.min().item<int64_t>() < 0 || which.max().item<int64_t>() >= rows())))
    throw std::invalid_argument("decoder Fisher: row indices (int64 [k]) in [0, " +
                                std::to_string(rows()) + ") expected");
  torch::NoGradGuard guard;
  const auto idx = which.contiguous();
  const int64_t n = h_.size(1), k = idx.size(0);
  const double inv_n = 1.0 / static_cast<double>(positions());
  auto out = torch::empty({k, n, n}, torch::kDouble);
  const int64_t* rows_of = idx.data_ptr<int64_t>();
  const int64_t* off = offsets_.data_ptr<int64_t>();
  const double* tail = tail_.data_ptr<double>();
  const double* scale = shared_m_.defined() ? shared_scale_.data_ptr<double>() : nullptr;
  at::parallel_for(0, k, 16, [&](int64_t a0, int64_t a1) {
    for (int64_t i = a0; i < a1; ++i) {
      const int64_t v = rows_of[i];
      auto f = out[i];
      f.copy_(hbar_ * tail[v]);
      const int64_t b = off[v], e = off[v + 1];
      if (e > b) {
        auto x = h_.index_select(0, pos_.narrow(0, b, e - b)) *
                 weight_.narrow(0, b, e - b).sqrt().unsqueeze(1);
        f.add_(x.t().mm(x).to(torch::kDouble));
      }
      f.mul_(inv_n);
      if (scale) f.add_(shared_m_, scale[v]);
    }
  });
  return out;
}

namespace {
// Keys from 2 on name the bins of ρ: key = kFirstBin + round(log ρ / log kFamilyRatio).
constexpr int64_t kFirstBin = int64_t{2} + (int64_t{1} << 20);
}  // namespace

torch::Tensor DecoderFisher::family_keys(int64_t r0, int64_t r1) const {
  if (r0 < 0 || r1 > rows() || r0 > r1)
    throw std::invalid_argument("decoder Fisher: rows outside [0, " + std::to_string(rows()) + ")");
  auto keys = torch::full({r1 - r0}, int64_t{-1}, torch::kLong);
  auto* key = keys.data_ptr<int64_t>();
  const auto* off = offsets_.data_ptr<int64_t>();
  const auto* tail = tail_.data_ptr<double>();
  const double* scale = shared_m_.defined() ? shared_scale_.data_ptr<double>() : nullptr;
  const double n = static_cast<double>(positions()), log_step = std::log(kFamilyRatio);
  for (int64_t v = r0; v < r1; ++v) {
    if (off[v + 1] != off[v]) continue;  // kept pairs: its own
    const double s = scale ? scale[v] : 0.0;
    if (!(s > 0)) {
      if (tail[v] > 0) key[v - r0] = 0;
    } else if (!(tail[v] > 0)) {
      key[v - r0] = 1;
    } else {
      const double bin = std::round(std::log(s * n / tail[v]) / log_step);
      if (std::abs(bin) < static_cast<double>(int64_t{1} << 19))
        key[v - r0] = kFirstBin + static_cast<int64_t>(bin);
    }
  }
  return keys;
}

torch::Tensor DecoderFisher::family_hessian(int64_t key) const {
  if (key == 0) return hbar_;
  if (key >= 1 && shared_m_.defined()) {
    if (key == 1) return shared_m_;
    const double rho = std::pow(kFamilyRatio, static_cast<double>(key - kFirstBin));
    return hbar_ + rho * shared_m_;
  }
  throw std::invalid_argument("decoder Fisher: no family " + std::to_string(key));
}

DecoderFisher DecoderFisher::rotated(const torch::Tensor& q) const {
  const int64_t n = h_.size(1);
  if (q.dim() != 2 || q.size(0) != n || q.size(1) != n)
    throw std::invalid_argument("decoder Fisher: a rotation of the input width expected");
  torch::NoGradGuard guard;
  DecoderFisher r = *this;
  r.h_ = h_.mm(q.to(torch::kFloat)).contiguous();
  const auto qd = q.to(torch::kDouble);
  r.hbar_ = qd.t().mm(hbar_).mm(qd);
  if (shared_m_.defined()) r.shared_m_ = qd.t().mm(shared_m_).mm(qd);
  return r;
}

DecoderFisher DecoderFisher::with_shared_term(const torch::Tensor& scale,
                                              const torch::Tensor& m) const {
  const int64_t n = h_.size(1);
  if (scale.dim() != 1 || scale.size(0) != rows() || m.dim() != 2 || m.size(0) != n ||
      m.size(1) != n)
    throw std::invalid_argument("decoder Fisher: a shared term of [V] scales and an [n, n] M");
  DecoderFisher r = *this;
  r.shared_scale_ = scale.to(torch::kCPU, torch::kDouble).contiguous();
  r.shared_m_ = m.to(torch::kCPU, torch::kDouble).contiguous();
  return r;
}

}  // namespace lmquant
