#include "quant/bit_allocation.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace lmquant {

double average_bits(const std::vector<MatrixCost>& costs, const std::map<std::string, int>& bits) {
  double stored = 0, weights = 0;
  for (const auto& c : costs) {
    stored += static_cast<double>(bits.at(c.name)) * c.weights +
              static_cast<double>(c.scale_bits) * c.scales;
    weights += static_cast<double>(c.weights);
  }
  return weights > 0 ? stored / weights : 0;
}

BitAllocation allocate_bits(const std::vector<MatrixCost>& costs, double budget, int min_bits,
                            int max_bits) {
  if (costs.empty()) throw std::invalid_argument("no matrices to allocate bits to");
  if (min_bits < 2 || max_bits > 16 || min_bits > max_bits)
    throw std::invalid_argument("bit range " + std::to_string(min_bits) + ".." +
                                std::to_string(max_bits) + " is not within 2..16");
  for (const auto& c : costs)
    for (int b = min_bits; b <= max_bits; ++b)
      if (!c.delta.count(b))
        throw std::invalid_argument("no measured loss for " + c.name + " at " + std::to_string(b) +
                                    " bits");
  // Within floating-point noise of the budget counts as meeting it.
  const double eps = 1e-9 * std::max(1.0, budget);
  BitAllocation a;
  for (const auto& c : costs) a.bits[c.name] = min_bits;
  const double floor = average_bits(costs, a.bits);
  if (floor > budget + eps) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "a budget of %.3g bits per weight is below %.4g, the average with every matrix "
                  "at %d bits (scales included)",
                  budget, floor, min_bits);
    throw std::invalid_argument(buf);
  }
  for (const auto& c : costs) a.bits[c.name] = max_bits;
  // Down: cheapest loss per bit saved.
  while (average_bits(costs, a.bits) > budget + eps) {
    const MatrixCost* best = nullptr;
    double best_rate = std::numeric_limits<double>::infinity();
    for (const auto& c : costs) {
      const int b = a.bits[c.name];
      if (b <= min_bits) continue;
      const double rate = (c.delta.at(b - 1) - c.delta.at(b)) / static_cast<double>(c.weights);
      if (rate < best_rate) best_rate = rate, best = &c;
    }
    if (!best) break;  // unreachable: the floor meets the budget
    --a.bits[best->name];
  }
  // Up: spend what is left on the largest loss decrease per bit.
  for (;;) {
    const MatrixCost* best = nullptr;
    double best_rate = 0;
    for (const auto& c : costs) {
      const int b = a.bits[c.name];
      if (b >= max_bits) continue;
      auto trial = a.bits;
      ++trial[c.name];
      if (average_bits(costs, trial) > budget + eps) continue;
      const double rate = (c.delta.at(b) - c.delta.at(b + 1)) / static_cast<double>(c.weights);
      if (!best || rate > best_rate) best_rate = rate, best = &c;
    }
    if (!best) break;
    ++a.bits[best->name];
  }
  a.average_bits = average_bits(costs, a.bits);
  for (const auto& c : costs) a.predicted_delta += c.delta.at(a.bits[c.name]);
  return a;
}

}  // namespace lmquant
