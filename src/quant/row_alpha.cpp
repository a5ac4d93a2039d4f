#include "quant/row_alpha.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace lmquant {

void keep_cheaper_rows(RowCandidates& best, const RowCandidates& cand) {
  if (best.parts.size() != cand.parts.size() || best.codes.size() != cand.codes.size() ||
      !best.cost.sizes().equals(cand.cost.sizes()) ||
      best.cost.size(0) != static_cast<int64_t>(best.parts.size()))
    throw std::logic_error("keep_cheaper_rows: candidates of other rows or widths");
  for (size_t k = 0; k < best.parts.size(); ++k) {
    const auto i = static_cast<int64_t>(k);
    const auto better = (cand.cost[i] < best.cost[i]).nonzero().view({-1});
    if (better.numel() == 0) continue;
    take_rows(best.parts[k], cand.parts[k], better);
    best.codes[k].index_copy_(0, better, cand.codes[k].index_select(0, better));
    best.cost[i].index_copy_(0, better, cand.cost[i].index_select(0, better));
    best.factor[i].index_copy_(0, better, cand.factor[i].index_select(0, better));
  }
}

std::map<std::string, int64_t> rows_at_factor(const torch::Tensor& factor,
                                              const std::vector<int>& widths,
                                              const std::vector<int>& row_bits) {
  if (factor.size(0) != static_cast<int64_t>(widths.size()) ||
      factor.size(1) != static_cast<int64_t>(row_bits.size()))
    throw std::logic_error("rows_at_factor: one factor per width and row expected");
  const auto f = factor.to(torch::kDouble).contiguous();
  const auto acc = f.accessor<double, 2>();
  std::map<std::string, int64_t> n;
  for (size_t r = 0; r < row_bits.size(); ++r) {
    const auto at = std::find(widths.begin(), widths.end(), row_bits[r]);
    if (at == widths.end()) continue;
    char b[32];
    std::snprintf(b, sizeof b, "%g", acc[at - widths.begin()][static_cast<int64_t>(r)]);
    ++n[b];
  }
  return n;
}

}  // namespace lmquant
