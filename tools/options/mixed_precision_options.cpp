#include "mixed_precision_options.h"

#include "flags.h"

namespace lmquant::options {

po::options_description mixed_precision_options(MixedFlags& f) {
  po::options_description d("Mixed precision (src/experiment/joint_allocation.h)");
  auto& j = f.joint;
  // clang-format off
  d.add_options()
    ("bits-budget", po::value(&f.bits_budget)->default_value(0.0),
     "bits per matrix (2..8) chosen on valid to meet this average of bits per weight, scales "
     "included, at the least measured loss (0: every matrix at --bits)")
    ("select-tokens", po::value(&f.select_tokens)->default_value(f.select_tokens),
     "--bits-budget, --joint-budget: measure on the first N valid tokens (0: all)")
    ("joint-budget", po::value(&f.joint_budget)->default_value(0.0),
     "whole-model bits per weight T (the record's, scales and width tags included): starting "
     "from this configuration, widths, granularities and the embedding/decoder split of the "
     "row budgets are changed one at a time, each move measured on the whole model on valid, "
     "the best taken until none lowers the loss (needs --row-widths; 0: off)")
    ("joint-granularities", po::value(&f.joint_granularities)->default_value(""),
     "--joint-budget: granularities each matrix may also take, e.g. row,group:64 (empty: "
     "keep each matrix's)")
    ("joint-min-bits", po::value(&j.min_bits)->default_value(j.min_bits),
     "--joint-budget: narrowest width of a matrix without row widths")
    ("joint-max-bits", po::value(&j.max_bits)->default_value(j.max_bits),
     "--joint-budget: widest width of a matrix without row widths")
    ("joint-split-step", po::value(&j.split_step)->default_value(j.split_step),
     "--joint-budget: step of the embedding/decoder split of the row budgets, bits per row")
    ("joint-rounds", po::value(&j.max_rounds)->default_value(j.max_rounds),
     "--joint-budget: at most this many accepted moves")
    ("joint-min-gain", po::value(&j.min_gain)->default_value(j.min_gain),
     "--joint-budget: nats per token a move must save to be taken")
    ("joint-noise-repeats", po::value(&j.noise_repeats)->default_value(j.noise_repeats),
     "--joint-budget: also measure the start at K equally good roundings (alpha jittered 1%); "
     "a move must then gain more than 2 sqrt(2) sigma of their losses (0: no noise floor)");
  // clang-format on
  return d;
}

void check_mixed_precision(MixedFlags& f, QuantConfig& q) {
  if (f.bits_budget != 0 && !(f.bits_budget > 0))
    throw std::invalid_argument("--bits-budget: give a positive average");
  if (f.active() && f.select_tokens < 0)
    throw std::invalid_argument("--select-tokens: give 0 (all) or a count");
  if (f.active() && q.bits_per_weight != 0)
    throw std::invalid_argument(
        "--bits-per-weight: not with --bits-budget or --joint-budget (each sets the size itself)");
  if (f.joint_budget == 0) return;
  if (f.bits_budget != 0) throw std::invalid_argument("--joint-budget: not with --bits-budget");
  if (!(f.joint_budget > 0)) throw std::invalid_argument("--joint-budget: give a positive T");
  // The start's row budget is re-set to meet T; any value in range starts it.
  if (q.has_row_widths() && q.row_budget == 0) q.row_budget = q.row_widths.front();
  if (!f.joint_granularities.empty())
    f.joint.granularities =
        parse_list<Granularity>("--joint-granularities", f.joint_granularities, parse_granularity);
}

MixedOutcome run_mixed_precision(const MixedFlags& f, const EvalContext& select,
                                 const QuantConfig& q, const Log& log) {
  MixedOutcome out;
  if (f.bits_budget != 0) {
    const MixedPrecision mp = with_flag(
        "--bits-budget", [&] { return choose_bits(select, q, f.bits_budget, 2, 8, log); });
    out.config = mp.config;
    out.table = allocation_table(mp);
  } else {
    const JointResult jr = with_flag(
        "--joint-budget", [&] { return choose_jointly(select, q, f.joint_budget, f.joint, log); });
    out.config = jr.config;
    out.table = joint_table(jr);
    out.joint = joint_json(jr, f.joint_budget, f.select_tokens);
  }
  return out;
}

}  // namespace lmquant::options
