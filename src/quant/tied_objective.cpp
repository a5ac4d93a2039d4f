#include "quant/tied_objective.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <stdexcept>

#include "quant/row_widths.h"

namespace lmquant {

torch::Tensor embedding_fisher_moment(const LstmLm& model, const Calibration& c, uint64_t seed) {
  if (!model->expansion.empty())
    throw std::invalid_argument("the tied objective's gradients: an unexpanded model expected");
  torch::AutoGradMode grad_on(true);  // callers quantize under a NoGradGuard
  LstmLm clone(model->clone_model());
  LstmLmImpl& m = *clone;
  m.eval();
  const int64_t V = m.config().vocab, E = m.encoder.size(1);
  const auto tokens = c.tokens.to(m.device());
  const int64_t S = tokens.size(1), L = tokens.size(0) - c.warmup;
  // Columns per batch: the [L · cols, V] logits and their gradient at ~64 MB each.
  const int64_t cols = std::clamp<int64_t>((int64_t{1} << 24) / std::max<int64_t>(1, L * V), 1, S);
  auto gen = at::detail::createCPUGenerator(seed);
  auto moment = torch::zeros({E, E}, torch::kDouble);
  int64_t n = 0;
  for (int64_t s0 = 0; s0 < S; s0 += cols) {
    const int64_t b = std::min(cols, S - s0);
    const auto part = tokens.narrow(1, s0, b);
    LstmState state = m.init_state(b);
    {
      torch::NoGradGuard g;
      if (c.warmup > 0) m.hidden_states(part.narrow(0, 0, c.warmup), state);
    }
    auto x = m.embed(part.narrow(0, c.warmup, L)).detach().requires_grad_(true);
    const auto logp = torch::log_softmax(m.logits(m.layers_forward(x, state)), 1);
    torch::Tensor y;
    {
      torch::NoGradGuard g;  // targets drawn from the model: the Fisher, not the empirical one
      y = torch::multinomial(logp.exp().to(torch::kCPU), 1, /*replacement=*/true, gen)
              .to(logp.device());
    }
    const auto nll = -logp.gather(1, y).sum();
    const auto grad = torch::autograd::grad({nll}, {x}).front();
    const auto g = grad.reshape({-1, E}).to(torch::kCPU, torch::kDouble);
    moment += g.t().mm(g);
    n += g.size(0);
  }
  return moment / static_cast<double>(n);
}

DecoderFisher tied_fisher(const DecoderFisher& decoder, const torch::Tensor& freq,
                          const torch::Tensor& moment) {
  return decoder.with_shared_term(freq, moment);
}

torch::Tensor tied_embedding_sensitivity(const std::vector<torch::Tensor>& errors,
                                         const torch::Tensor& freq, const torch::Tensor& moment) {
  const auto m = moment.to(torch::kCPU, torch::kDouble);
  const auto f = freq.to(torch::kCPU, torch::kDouble);
  auto cost = torch::empty({static_cast<int64_t>(errors.size()), f.size(0)}, torch::kDouble);
  for (size_t k = 0; k < errors.size(); ++k) {
    const auto d = errors[k].to(torch::kCPU, torch::kDouble);
    cost[static_cast<int64_t>(k)] = 0.5 * f * (d.mm(m) * d).sum(1);
  }
  return cost;
}

torch::Tensor tied_sensitivity(const std::vector<torch::Tensor>& errors, const torch::Tensor& h,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               const torch::Tensor& freq, const torch::Tensor& moment) {
  return fisher_sensitivity(errors, h, weight, bias) +
         tied_embedding_sensitivity(errors, freq, moment);
}

}  // namespace lmquant
