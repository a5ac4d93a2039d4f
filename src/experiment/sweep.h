// A sweep: the grid bits × methods × clip rules × granularities × (OCS: expand ratios ×
// grid-aware), each cell one record (report/record.h) on one stream. The results file holds one
// record per line, the float model's first; it is rewritten whole (temporary file + rename)
// after every cell, so an interrupted sweep keeps every finished cell and the same call resumes.
// A cell is reused only when its record's provenance (model SHA-256, corpus, split and its
// SHA-256, tokenizer, lmquant version) equals this sweep's: a results file written for another
// model, split or tokenizer is refused, naming the field that differs, and left unchanged.
//
// Shards (a sweep spread over the tasks of a Slurm job array, or any N processes): the grid is a
// deterministic, ordered list of cells (SweepGrid::cells); the cells are dealt to the N shards
// in snake order — cell i goes to shard r when i mod 2N = r < N, to shard 2N − 1 − r otherwise:
// 0, 1, …, N−1, N−1, …, 1, 0, 0, 1, … — so every shard gets ⌊cells/N⌋ or one more, and a share of
// each bit width and method. (Plain i mod N would give, for N = 2, every gptq cell of a
// `--rounding nearest,gptq` grid to shard 1: the grid's innermost loops alternate.) Each shard
// writes its cells, with its own float record, to its own results file, resumable as a whole
// sweep is. Every record carries its place in the grid
// (Record::sweep: the grid's SHA-256, the cell's index, the shard), so merge_sweep_shards can
// check the pieces and put them back together.
#pragma once
#include <functional>
#include <optional>
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
  std::vector<bool> grid_aware = {false};                       // OCS cells
  std::vector<Target> targets = {Target::kEmbedding, Target::kInput, Target::kRecurrent,
                                 Target::kDecoder};
  std::vector<Rounding> roundings = {Rounding::kNearest};
  // Settings every cell shares (calibration, dampening, column order, matrix bits).
  QuantConfig base;
  // The cells in grid order, each validated (throws std::invalid_argument naming the value).
  std::vector<QuantConfig> cells() const;
};

// Shard `index` of `count` (0 <= index < count) runs the cells dealt to it (snake order, above).
struct Shard {
  int64_t index = 0, count = 1;
  // The shard of `count` that cell `cell` is dealt to.
  static int64_t owner(int64_t cell, int64_t count) {
    const int64_t r = cell % (2 * count);
    return r < count ? r : 2 * count - 1 - r;
  }
  bool owns(int64_t cell) const { return owner(cell, count) == index; }
  bool sharded() const { return count > 1; }
  std::string to_string() const;  // "I/N"
  // "shard-I-of-N": what `{shard}` stands for in a results file's name.
  std::string file_tag() const;
};
// "I/N" with 0 <= I < N; throws std::invalid_argument naming the text and the rule.
Shard parse_shard(const std::string& text);
// The shard a Slurm array task is: I = SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN (0 when
// unset), N = SLURM_ARRAY_TASK_COUNT; nullopt when either of ID and COUNT is unset. Throws
// std::invalid_argument when they do not make a shard (an array with gaps: --array=1,5).
// `getenv` is the lookup (std::getenv by default; tests pass their own).
std::optional<Shard> shard_from_slurm(
    const std::function<const char*(const char*)>& getenv = nullptr);

// The SHA-256 of a grid: of its cells' configurations (QuantConfig::to_json), in order.
std::string grid_sha256(const std::vector<QuantConfig>& cells);

struct SweepOptions {
  std::string out;     // the results file (JSON lines)
  bool fresh = false;  // discard what `out` holds instead of resuming from it
  int repeats = 0;     // rounding spread: K jittered re-quantizations per cell
  Shard shard;         // which cells of the grid this process runs (default: all)
  Log log;             // one line per finished cell (with ETA)
};

// Runs the cells of `cells` (the whole grid) that options.shard owns and `options.out` does not
// hold yet, and returns every record of the file (the float model's first). Throws
// std::runtime_error when `out` holds records of another provenance, or (sharded) records that
// another shard ran (and !fresh), or Interrupted with the number of finished cells kept.
std::vector<Record> run_sweep(const EvalContext& context, const std::vector<QuantConfig>& cells,
                              const SweepOptions& options);

// Merging the results files of a sharded sweep into one: every record must share one
// provenance (model SHA-256, corpus, split and its SHA-256, slice, tokenizer, version) and one
// grid (its SHA-256 and shard count, from the records' sweep tags); every cell of the grid must be
// present; a cell found twice must have the same numbers (loss and rounding spread; a resumed or
// re-merged file repeats cells), and every shard's float record the same perplexity. The result:
// the float record once, then the cells in grid order. Throws std::runtime_error listing every
// problem: a missing cell with its index, label and the shard that owes it; a duplicated cell with
// different numbers and the files that hold them; a record of another provenance or grid (a
// foreign record) with its file and line. Idempotent: merging a merged file (with or without its
// shards) gives the same records.
std::vector<Record> merge_sweep_shards(const std::vector<std::string>& paths);

// A sweep's report directory, written whole (report/report.h write_report_dir): report.md (the
// model as the user named it, its SHA-256, the split, the records' table and the plots),
// results.csv, results.json, perplexity_vs_bits.png, perplexity_vs_overhead.png. Throws when the
// records differ in provenance. Returns notes on plots that could not be drawn.
std::vector<std::string> write_sweep_report(const std::string& dir,
                                            const std::vector<Record>& records,
                                            const std::string& model_label);

}  // namespace lmquant
