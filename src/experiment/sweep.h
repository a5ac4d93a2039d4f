// A sweep: the grid bits × methods × clip rules × granularities × (OCS: expand ratios ×
// grid-aware), each cell one record (report/record.h) on one stream. The results file holds one
// record per line, the float model's first; it is rewritten whole (temporary file + rename)
// after every cell, so an interrupted sweep keeps every finished cell and the same call resumes.
// A cell is reused only when its record's provenance (model SHA-256, corpus, split and its
// SHA-256, tokenizer, lmquant version) equals this sweep's: a results file written for another
// model, split or tokenizer is refused, naming the field that differs, and left unchanged.
#pragma once
#include <string>
#include <vector>

#include "experiment/experiment.h"
#include "quant/quantize_model.h"

namespace lmquant {

struct SweepGrid {
  std::vector<int> bits = {3, 4, 5, 6, 8};
  std::vector<Method> methods = {Method::kClip, Method::kOcs};
  std::vector<ClipRule> clips = {ClipRule::parse("max"), ClipRule::parse("mse")};
  std::vector<Granularity> granularities = {Granularity::kTensor};
  std::vector<double> expand_ratios = {0.01, 0.02, 0.05, 0.1};  // OCS cells
  std::vector<bool> grid_aware = {false};                        // OCS cells
  std::vector<Target> targets = {Target::kEmbedding, Target::kInput, Target::kRecurrent,
                                 Target::kDecoder};
  std::vector<Rounding> roundings = {Rounding::kNearest};
  // Settings every cell shares (calibration, dampening, column order, matrix bits).
  QuantConfig base;
  // The cells in grid order, each validated (throws std::invalid_argument naming the value).
  std::vector<QuantConfig> cells() const;
};

struct SweepOptions {
  std::string out;      // the results file (JSON lines)
  bool fresh = false;   // discard what `out` holds instead of resuming from it
  int repeats = 0;      // rounding spread: K jittered re-quantizations per cell
  Log log;              // one line per finished cell (with ETA)
};

// Runs the cells not yet in `options.out` and returns every record (the float model's first).
// Throws std::runtime_error when `out` holds records of another provenance (and !fresh), or
// Interrupted with the number of finished cells kept.
std::vector<Record> run_sweep(const EvalContext& context, const std::vector<QuantConfig>& cells,
                              const SweepOptions& options);

}  // namespace lmquant
