#include "quant/ocs.h"

#include <cmath>
#include <queue>
#include <stdexcept>
#include <string>

namespace lmquant {

int64_t ocs_split_count(double ratio, int64_t in) {
  if (!(ratio >= 0 && ratio <= 1))
    throw std::invalid_argument("OCS expand ratio must be in [0, 1], got " + std::to_string(ratio));
  // ⌈r · in⌉, guarding against 0.1 * 200 = 20.000000000000004.
  return static_cast<int64_t>(std::ceil(ratio * static_cast<double>(in) - 1e-9));
}

OcsPlan plan_ocs(const torch::Tensor& w, double ratio) {
  TORCH_CHECK(w.dim() == 2, "OCS needs a matrix");
  OcsPlan plan;
  plan.in = w.size(1);
  const int64_t k = ocs_split_count(ratio, plan.in);
  auto colmax = std::get<0>(w.detach().abs().max(0)).to(torch::kCPU, torch::kDouble).contiguous();
  const double* m = colmax.data_ptr<double>();
  std::vector<int64_t> orig;                // original column behind each current column
  std::vector<double> cur;                  // its current max |w|
  using Item = std::pair<double, int64_t>;  // (max, -column): larger max first, then lower index
  std::priority_queue<Item> heap;
  for (int64_t j = 0; j < plan.in; ++j) {
    orig.push_back(j);
    cur.push_back(m[j]);
    heap.push({m[j], -j});
  }
  for (int64_t t = 0; t < k; ++t) {
    const int64_t c = -heap.top().second;
    heap.pop();
    cur[static_cast<size_t>(c)] /= 2;
    const int64_t appended = static_cast<int64_t>(orig.size());
    orig.push_back(orig[static_cast<size_t>(c)]);
    cur.push_back(cur[static_cast<size_t>(c)]);
    plan.split_from.push_back(c);
    plan.source.push_back(orig[static_cast<size_t>(c)]);
    heap.push({cur[static_cast<size_t>(c)], -c});
    heap.push({cur.back(), -appended});
  }
  return plan;
}

torch::Tensor apply_ocs(const torch::Tensor& w, const OcsPlan& plan, const torch::Tensor& step) {
  const int64_t k = plan.splits();
  auto out = torch::cat({w.detach(), torch::zeros({w.size(0), k}, w.options())}, 1);
  torch::Tensor shift;
  if (step.defined()) shift = (step.dim() == 0 ? step : step.view({-1})) / 4;
  for (int64_t t = 0; t < k; ++t) {
    auto col = out.select(1, plan.split_from[static_cast<size_t>(t)]);
    auto half = col / 2;
    auto fresh = out.select(1, plan.in + t);
    if (shift.defined()) {
      fresh.copy_(half + shift);
      col.copy_(half - shift);
    } else {
      fresh.copy_(half);
      col.copy_(half);
    }
  }
  return out;
}

torch::Tensor fold_ocs(const torch::Tensor& w_split, const OcsPlan& plan) {
  auto folded = w_split.narrow(1, 0, plan.in).clone();
  if (plan.splits() > 0)
    folded.index_add_(1, ocs_index(plan, w_split.device()),
                      w_split.narrow(1, plan.in, plan.splits()));
  return folded;
}

torch::Tensor ocs_index(const OcsPlan& plan, const torch::Device& device) {
  return torch::tensor(plan.source, torch::kInt64).to(device);
}

torch::Tensor expand_input(const torch::Tensor& x, const OcsPlan& plan) {
  return torch::cat({x, x.index_select(x.dim() - 1, ocs_index(plan, x.device()))}, -1);
}

}  // namespace lmquant
