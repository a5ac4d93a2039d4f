#include "quant/objective.h"

#include <stdexcept>

namespace lmquant {

std::string to_string(Objective o) {
  switch (o) {
    case Objective::kWeight:
      return "weight";
    case Objective::kInputs:
      return "inputs";
    case Objective::kFeed:
      return "feed";
    case Objective::kFisher:
      return "fisher";
    case Objective::kTied:
      return "tied";
  }
  throw std::logic_error("unknown objective");
}

Objective parse_objective(const std::string& name) {
  for (auto o : {Objective::kWeight, Objective::kInputs, Objective::kFeed, Objective::kFisher,
                 Objective::kTied})
    if (to_string(o) == name) return o;
  throw std::invalid_argument("unknown objective '" + name +
                              "'; valid values: weight, inputs, feed, fisher, tied");
}

bool compensated(Objective o) { return o != Objective::kWeight; }

torch::Tensor feed_hessian(const torch::Tensor& w_ih) {
  const auto w = w_ih.detach().to(torch::kCPU, torch::kDouble);
  return w.t().mm(w);
}

double quadratic_error(const torch::Tensor& delta, const torch::Tensor& hessian) {
  const auto d = delta.to(torch::kDouble).reshape({-1, 1});
  return d.t().mm(hessian.to(torch::kDouble)).mm(d).item<double>();
}

}  // namespace lmquant
