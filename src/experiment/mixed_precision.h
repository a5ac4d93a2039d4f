// `--bits-budget B`: bit widths per matrix chosen on a selection stream (valid, or its first N
// tokens; never test) to meet an average of B bits per weight, scales included
// (quant/bit_allocation.h). Each matrix's loss increase Δ_m(b) is measured with only that matrix
// at b bits and every other targeted matrix at 16 bits (≈ float), with the configuration's own
// clip rule, granularity, OCS and rounding.
#pragma once
#include "experiment/experiment.h"
#include "quant/bit_allocation.h"

namespace lmquant {

struct MixedPrecision {
  QuantConfig config;            // `base` with matrix_bits set to the allocation
  BitAllocation allocation;
  std::vector<MatrixCost> costs;  // what the allocation was chosen from
  double budget = 0;
};

// Throws std::invalid_argument when `select` is a test stream (choices are made on valid or
// train), or when the budget cannot be met (allocate_bits).
MixedPrecision choose_bits(const EvalContext& select, const QuantConfig& base, double budget,
                           int min_bits = 2, int max_bits = 8, const Log& log = {});

// The allocation as a table: matrix, weights, bits, Δ loss at those bits; then the average.
std::string allocation_table(const MixedPrecision& mp);

}  // namespace lmquant
