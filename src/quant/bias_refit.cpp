#include "quant/bias_refit.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace lmquant {

BiasRefit refit_decoder_bias(const torch::Tensor& h_in, const torch::Tensor& w_in,
                             const torch::Tensor& b_in, const torch::Tensor& h_hat_in,
                             const torch::Tensor& w_hat_in, int iterations) {
  if (h_in.dim() != 2 || w_in.dim() != 2 || h_in.size(1) != w_in.size(1) || b_in.dim() != 1 ||
      b_in.size(0) != w_in.size(0) || !h_hat_in.sizes().equals(h_in.sizes()) ||
      !w_hat_in.sizes().equals(w_in.sizes()) || h_in.size(0) < 1)
    throw std::invalid_argument(
        "bias refit: h and h_hat [N, n], W and W_hat [V, n], b [V] expected");
  if (iterations < 0)
    throw std::invalid_argument("bias refit: iterations must be ≥ 0, got " +
                                std::to_string(iterations));
  torch::NoGradGuard guard;
  auto f32 = [](const torch::Tensor& t) {
    return t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  };
  const auto h = f32(h_in), w = f32(w_in), b = f32(b_in), h_hat = f32(h_hat_in),
             w_hat = f32(w_hat_in);
  const int64_t N = h.size(0), V = w.size(0);
  // Positions per block: at most ~64 MiB of [positions, V] logits.
  const int64_t chunk = std::clamp<int64_t>((int64_t{1} << 24) / std::max<int64_t>(1, V), 1, N);

  // The float model's side, once: P_v = Σ_t p_tv, Σ_t p_tᵀ log p_t, and Σ_t p_tᵀ Ŵ ĥ_t.
  auto mass = torch::zeros({V}, torch::kDouble);
  double neg_entropy = 0, cross = 0;
  for (int64_t t0 = 0; t0 < N; t0 += chunk) {
    const int64_t nt = std::min(chunk, N - t0);
    const auto logp = torch::log_softmax(torch::addmm(b, h.narrow(0, t0, nt), w.t()), 1);
    const auto p = logp.exp();
    mass += p.sum(0).to(torch::kDouble);
    neg_entropy += (p * logp).sum().item<double>();
    cross += (p * h_hat.narrow(0, t0, nt).mm(w_hat.t())).sum().item<double>();
  }
  // The quantized side at bias `bias`: L(bias) and P̂.
  auto pass = [&](const torch::Tensor& bias, torch::Tensor& mass_hat) {
    mass_hat = torch::zeros({V}, torch::kDouble);
    double lse = 0;
    for (int64_t t0 = 0; t0 < N; t0 += chunk) {
      const int64_t nt = std::min(chunk, N - t0);
      const auto z = torch::addmm(bias, h_hat.narrow(0, t0, nt), w_hat.t());
      const auto l = z.logsumexp(1, /*keepdim=*/true);
      lse += l.sum().item<double>();
      mass_hat += (z - l).exp().sum(0).to(torch::kDouble);
    }
    const double linear = (mass * bias.to(torch::kDouble)).sum().item<double>();
    return (neg_entropy + lse - cross - linear) / static_cast<double>(N);
  };

  BiasRefit out;
  auto bias = b.to(torch::kDouble);
  torch::Tensor mass_hat;
  out.kl.push_back(pass(b, mass_hat));
  for (int it = 0; it < iterations; ++it) {
    // A token with no mass on either side (underflowed everywhere) keeps its bias.
    const auto both = (mass > 0) & (mass_hat > 0);
    bias += torch::where(both, mass / mass_hat, torch::ones_like(mass)).log();
    out.kl.push_back(pass(bias.to(torch::kFloat), mass_hat));
  }
  out.bias = bias.to(torch::kFloat);
  return out;
}

}  // namespace lmquant
