#include "quant/calibration.h"

#include <algorithm>
#include <random>
#include <stdexcept>

namespace lmquant {

Calibration make_calibration(const torch::Tensor& train, const CalibrationOptions& o) {
  if (o.sequences < 1 || o.length < 1 || o.warmup < 0)
    throw std::invalid_argument("calibration: give at least 1 sequence of at least 1 token (got " +
                                std::to_string(o.sequences) + " sequences of " +
                                std::to_string(o.length) + ")");
  const int64_t span = o.warmup + o.length, n = train.numel();
  if (n < span)
    throw std::invalid_argument("calibration: the train stream has " + std::to_string(n) +
                                " tokens, fewer than one sequence (" + std::to_string(span) + ")");
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int64_t> start(0, n - span);
  auto flat = train.reshape({-1}).to(torch::kCPU, torch::kLong);
  auto tokens = torch::empty({span, o.sequences}, torch::kLong);
  for (int64_t i = 0; i < o.sequences; ++i)
    tokens.select(1, i).copy_(flat.narrow(0, start(rng), span));
  return {tokens, o.warmup, torch::bincount(flat)};
}

std::map<std::string, torch::Tensor> calibration_inputs(LstmLmImpl& model, const Calibration& c,
                                                        const std::vector<std::string>& wanted) {
  torch::NoGradGuard guard;
  const bool was_training = model.is_training();
  model.eval();
  auto tokens = c.tokens.to(model.device());
  LstmState state = model.init_state(tokens.size(1));
  if (c.warmup > 0)
    collect_matrix_inputs(model, tokens.narrow(0, 0, c.warmup), state,
                          [](const NamedMatrix&, const torch::Tensor&) {});
  std::map<std::string, torch::Tensor> out;
  collect_matrix_inputs(model, tokens.narrow(0, c.warmup, tokens.size(0) - c.warmup), state,
                        [&](const NamedMatrix& m, const torch::Tensor& x) {
                          if (std::find(wanted.begin(), wanted.end(), m.name) != wanted.end())
                            out[m.name] = x.detach().to(torch::kCPU, torch::kFloat).contiguous();
                        });
  if (was_training) model.train();
  return out;
}

}  // namespace lmquant
