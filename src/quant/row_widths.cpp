#include "quant/row_widths.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace lmquant {

std::string to_string(RowSensitivity s) {
  return s == RowSensitivity::kOutput ? "output" : "frequency";
}

RowSensitivity parse_row_sensitivity(const std::string& s) {
  if (s == "frequency") return RowSensitivity::kFrequency;
  if (s == "output") return RowSensitivity::kOutput;
  throw std::invalid_argument("unknown row sensitivity '" + s +
                              "'; valid values: frequency, output");
}

void check_row_widths(const std::vector<int>& w) {
  if (w.size() < 2)
    throw std::invalid_argument("row widths: give at least two widths (e.g. 2,3,4,8), got " +
                                std::to_string(w.size()));
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] < 0 || w[i] > 8)
      throw std::invalid_argument(
          "row widths must be in 0..8 (0: the row is zero; 1 only on the midrise grid), got " +
          std::to_string(w[i]));
    if (i > 0 && w[i] <= w[i - 1])
      throw std::invalid_argument("row widths must be strictly increasing, got " +
                                  std::to_string(w[i - 1]) + " before " + std::to_string(w[i]));
  }
}

int width_tag_bits(const std::vector<int>& widths) {
  int b = 0;
  while ((size_t{1} << b) < widths.size()) ++b;
  return b;
}

RowAllocation allocate_row_widths(const torch::Tensor& cost_in, const std::vector<int>& widths,
                                  double budget) {
  check_row_widths(widths);
  if (cost_in.dim() != 2 || cost_in.size(0) != static_cast<int64_t>(widths.size()))
    throw std::invalid_argument("row widths: one cost row per width expected");
  if (!(budget >= widths.front()))
    throw std::invalid_argument("row budget " + std::to_string(budget) +
                                " is below the narrowest width " + std::to_string(widths.front()));
  const auto cost = cost_in.to(torch::kDouble).contiguous();
  const int64_t K = cost.size(0), V = cost.size(1);
  const double* c = cost.data_ptr<double>();
  auto s = [&](int64_t k, int64_t v) { return c[k * V + v]; };
  // Hull steps of every row: (gain per bit, row, from index, to index), in row order.
  struct Step {
    double gain;
    int64_t row;
    int from, to;
  };
  std::vector<Step> steps;
  for (int64_t v = 0; v < V; ++v) {
    int cur = 0;
    while (cur + 1 < K) {
      int best = -1;
      double best_gain = 0;
      for (int k = cur + 1; k < K; ++k) {
        const double g = (s(cur, v) - s(k, v)) / (widths[k] - widths[cur]);
        // The steepest positive slope; among equal slopes the farthest point.
        if (g > best_gain || (best >= 0 && g == best_gain)) {
          best = k;
          best_gain = g;
        }
      }
      if (best < 0) break;  // no wider width lowers the cost
      steps.push_back({best_gain, v, cur, best});
      cur = best;
    }
  }
  // Decreasing gain; a row's own steps keep their order (stable sort, gains non-increasing).
  std::stable_sort(steps.begin(), steps.end(),
                   [](const Step& a, const Step& b) { return a.gain > b.gain; });
  RowAllocation out;
  std::vector<int> at(static_cast<size_t>(V), 0);  // width index per row
  std::vector<char> stopped(static_cast<size_t>(V), 0);
  double left = budget * static_cast<double>(V) - static_cast<double>(widths.front()) * V;
  for (const Step& st : steps) {
    const auto r = static_cast<size_t>(st.row);
    if (stopped[r] || at[r] != st.from) {
      stopped[r] = 1;
      continue;
    }
    const double cost_bits = widths[st.to] - widths[st.from];
    if (cost_bits > left + 1e-9) {
      stopped[r] = 1;  // its later steps depend on this one
      continue;
    }
    left -= cost_bits;
    at[r] = st.to;
  }
  out.bits.resize(static_cast<size_t>(V));
  double sum = 0;
  for (int64_t v = 0; v < V; ++v) {
    const int k = at[static_cast<size_t>(v)];
    out.bits[static_cast<size_t>(v)] = widths[k];
    sum += widths[k];
    out.predicted += s(k, v);
  }
  out.mean_bits = V ? sum / static_cast<double>(V) : 0;
  return out;
}

torch::Tensor frequency_sensitivity(const std::vector<torch::Tensor>& errors,
                                    const torch::Tensor& freq, const torch::Tensor& feed) {
  const auto f = freq.to(torch::kCPU, torch::kDouble).view({-1});
  const auto F = feed.defined() ? feed.detach().to(torch::kCPU, torch::kDouble) : torch::Tensor();
  std::vector<torch::Tensor> rows;
  for (const auto& e_in : errors) {
    const auto e = e_in.detach().to(torch::kCPU, torch::kDouble);
    if (e.dim() != 2 || e.size(0) != f.size(0))
      throw std::invalid_argument("frequency sensitivity: errors [V, n] with V = " +
                                  std::to_string(f.size(0)) + " expected");
    if (!F.defined()) {
      rows.push_back(f * e.pow(2).sum(1));
      continue;
    }
    if (F.dim() != 2 || F.size(1) != e.size(1))
      throw std::invalid_argument(
          "frequency sensitivity: feed [m, n] with n = " + std::to_string(e.size(1)) + " expected");
    // ‖F δ_v‖² a block of rows at a time: F δ for every row at once is V × m doubles (213 MB
    // for wt2-lstm200's 33,278 × 800, twice with its square).
    auto sq = torch::empty({e.size(0)}, torch::kDouble);
    constexpr int64_t kRows = 4096;
    for (int64_t r0 = 0; r0 < e.size(0); r0 += kRows) {
      const int64_t nr = std::min(kRows, e.size(0) - r0);
      sq.narrow(0, r0, nr).copy_(e.narrow(0, r0, nr).mm(F.t()).pow(2).sum(1));  // F δ_v
    }
    rows.push_back(f * sq);
  }
  return torch::stack(rows);
}

torch::Tensor fisher_sensitivity(const std::vector<torch::Tensor>& errors,
                                 const torch::Tensor& h_in, const torch::Tensor& weight,
                                 const torch::Tensor& bias, int64_t block) {
  torch::NoGradGuard guard;
  const auto h = h_in.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const auto W = weight.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const auto b = bias.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t N = h.size(0), V = W.size(0);
  if (h.dim() != 2 || W.dim() != 2 || h.size(1) != W.size(1) || b.numel() != V)
    throw std::invalid_argument("fisher sensitivity: h [N, n], W [V, n], bias [V] expected");
  std::vector<torch::Tensor> E;
  for (const auto& e : errors) {
    if (!e.sizes().equals(W.sizes()))
      throw std::invalid_argument("fisher sensitivity: each error must have W's shape");
    E.push_back(e.detach().to(torch::kCPU, torch::kFloat).contiguous());
  }
  auto acc = torch::zeros({static_cast<int64_t>(E.size()), V}, torch::kDouble);
  for (int64_t t0 = 0; t0 < N; t0 += block) {
    const int64_t n = std::min(block, N - t0);
    const auto hb = h.narrow(0, t0, n);
    const auto p = torch::softmax(torch::addmm(b, hb, W.t()), 1);  // [n, V]
    const auto w = p * (1 - p);
    for (size_t k = 0; k < E.size(); ++k) {
      const auto err = hb.mm(E[k].t());  // [n, V]: δ_v · h_t
      acc[static_cast<int64_t>(k)] += (w * err * err).sum(0).to(torch::kDouble);
    }
  }
  return acc.mul_(0.5 / static_cast<double>(std::max<int64_t>(1, N)));
}

torch::Tensor decoder_log_normalizer(const torch::Tensor& h_in, const torch::Tensor& weight,
                                     const torch::Tensor& bias, int64_t block) {
  torch::NoGradGuard guard;
  const auto h = h_in.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const auto W = weight.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const auto b = bias.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t N = h.size(0);
  auto lse = torch::empty({N}, torch::kDouble);
  for (int64_t t0 = 0; t0 < N; t0 += block) {
    const int64_t n = std::min(block, N - t0);
    lse.narrow(0, t0, n).copy_(torch::logsumexp(torch::addmm(b, h.narrow(0, t0, n), W.t()), 1));
  }
  return lse;
}

torch::Tensor fisher_sensitivity_rows(const std::vector<torch::Tensor>& errors,
                                      const torch::Tensor& h_in, const torch::Tensor& weight,
                                      const torch::Tensor& bias, const torch::Tensor& lse,
                                      int64_t block) {
  torch::NoGradGuard guard;
  const auto h = h_in.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const auto W = weight.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const auto b = bias.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t N = h.size(0), V = W.size(0);
  if (h.dim() != 2 || W.dim() != 2 || h.size(1) != W.size(1) || b.numel() != V || lse.numel() != N)
    throw std::invalid_argument(
        "fisher sensitivity: h [N, n], rows W [V, n], bias [V], lse [N] expected");
  auto acc = torch::zeros({static_cast<int64_t>(errors.size()), V}, torch::kDouble);
  for (int64_t t0 = 0; t0 < N; t0 += block) {
    const int64_t n = std::min(block, N - t0);
    const auto hb = h.narrow(0, t0, n);
    const auto z =
        torch::addmm(b, hb, W.t()).to(torch::kDouble) - lse.narrow(0, t0, n).unsqueeze(1);
    const auto p = z.exp();
    const auto w = (p * (1 - p)).to(torch::kFloat);
    for (size_t k = 0; k < errors.size(); ++k) {
      const auto err = hb.mm(errors[k].detach().to(torch::kCPU, torch::kFloat).t());
      acc[static_cast<int64_t>(k)] += (w * err * err).sum(0).to(torch::kDouble);
    }
  }
  return acc.mul_(0.5 / static_cast<double>(std::max<int64_t>(1, N)));
}

torch::Tensor smoothed_frequency(const torch::Tensor& counts_in, int64_t vocab) {
  auto c = counts_in.to(torch::kCPU, torch::kDouble).view({-1});
  if (c.numel() > vocab)
    throw std::invalid_argument("token counts of " + std::to_string(c.numel()) +
                                " ids for a vocabulary of " + std::to_string(vocab));
  auto counts = torch::zeros({vocab}, torch::kDouble);
  counts.narrow(0, 0, c.numel()).copy_(c);
  return (counts + 1) / (counts.sum().item<double>() + static_cast<double>(vocab));
}

}  // namespace lmquant
