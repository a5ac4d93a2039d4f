// The mixed-precision searches of `lmquant quantize` as options: --bits-budget (bits per matrix
// from single-matrix sensitivities, src/experiment/mixed_precision.h) and --joint-budget (the
// joint solver, src/experiment/joint_allocation.h), both choosing on the first --select-tokens
// tokens of valid.
#pragma once
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "experiment/joint_allocation.h"
#include "experiment/mixed_precision.h"

namespace lmquant::options {

namespace po = boost::program_options;

struct MixedFlags {
  double bits_budget = 0, joint_budget = 0;
  long select_tokens = 20000;
  JointOptions joint;
  std::string joint_granularities;
  bool active() const { return bits_budget != 0 || joint_budget != 0; }
};

po::options_description mixed_precision_options(MixedFlags& f);

// Checks the flags against `q` before any work (errors name the flag); the joint search's start
// gets a row budget in range when it has none (the search re-solves it to meet T).
void check_mixed_precision(MixedFlags& f, QuantConfig& q);

struct MixedOutcome {
  QuantConfig config;    // the configuration chosen
  std::string table;     // the search's table (allocation_table / joint_table)
  nlohmann::json joint;  // the joint search's "joint_allocation" (null for --bits-budget)
};
// Runs the search the flags name on `select` (a valid stream), from `q`.
MixedOutcome run_mixed_precision(const MixedFlags& f, const EvalContext& select,
                                 const QuantConfig& q, const Log& log);

}  // namespace lmquant::options
