// Mixed precision: a bit width per matrix (from min..max bits) meeting an average budget of B
// bits per weight, scales included, while keeping the measured loss low.
//
//   average bits = Σ_m (b_m · n_m + c_m · g_m) / Σ_m n_m   (n_m weights, g_m scales of c_m bits:
//                                                          quant/quant_types.h scale_bits)
//
// The loss of an allocation is predicted as the sum of each matrix's own loss increase
// Δ_m(b_m) = loss with only m quantized at b_m − float loss (measured; interactions ignored).
// Greedy (the usual knapsack heuristic): start every matrix at max bits; while the average is
// over B, take one bit from the matrix whose Δ grows least per bit of storage saved,
// (Δ_m(b−1) − Δ_m(b)) / n_m; then, while some matrix can take one bit back within B, give it to
// the one whose Δ falls most per bit spent. Example: two matrices of 100 weights, one scale
// each (0.32 bits per weight of scales), B = 3.82: from (8, 8) down to (3, 4) or (4, 3) —
// whichever loses less — average (300 + 400 + 64) / 200 = 3.82.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace lmquant {

struct MatrixCost {
  std::string name;
  int64_t weights = 0;          // n_m (with OCS: the widened matrix's)
  int64_t scales = 0;           // g_m
  std::map<int, double> delta;  // Δ_m(b) for every b in min..max
  int scale_bits = 32;          // c_m
};

struct BitAllocation {
  std::map<std::string, int> bits;
  double average_bits = 0;     // scales included
  double predicted_delta = 0;  // Σ Δ_m(b_m)
};

double average_bits(const std::vector<MatrixCost>& costs, const std::map<std::string, int>& bits);

// Throws std::invalid_argument when B is below the average at min bits (naming that minimum),
// or a Δ is missing for a width in min..max.
BitAllocation allocate_bits(const std::vector<MatrixCost>& costs, double budget, int min_bits = 2,
                            int max_bits = 8);

}  // namespace lmquant
