// The main job: "what should I ship at B bits?" for one model.
//
// Protocol (choose on validation, report on test):
//   1. candidates, each evaluated on the selection stream (default: the first 50,000 tokens of
//      valid): every clip rule at every granularity (tensor, row), then OCS at every expand ratio
//      with max clipping and with the best non-max rule of each granularity (best on selection);
//      with gptq among the roundings, error-compensating rounding (calibrated on train) with max
//      and with that best rule at each granularity;
//   2. the recommendation is the candidate with the lowest selection perplexity;
//   3. reported on the report split (test), never chosen by it: float, and the selection's best
//      of each family (clipping per tensor, clipping per row, OCS per tensor, OCS per row, gptq
//      per tensor, gptq per row), each
//      with Δ vs float and its 95% paired-bootstrap interval; the recommendation against the
//      runner-up (the best of the other families) with its interval; a cheaper runner-up (no OCS
//      overhead) that is not significantly worse is named as the alternative.
//   4. the bits curve: the recommended configuration and plain max clipping (tensor and row) at
//      neighbouring bit widths, on the selection stream.
// Selecting on the report split needs select_split = report_split, and the report says so.
#pragma once
#include <string>
#include <vector>

#include "experiment/experiment.h"
#include "lm/train.h"

namespace lmquant {

struct MainJobOptions {
  int bits = 4;
  std::vector<ClipRule> clips = {ClipRule::parse("max"), ClipRule::parse("mse"),
                                 ClipRule::parse("aciq"), ClipRule::parse("kl"),
                                 ClipRule::parse("percentile:99.99")};
  std::vector<Granularity> granularities = {Granularity::kTensor, Granularity::kRow};
  std::vector<double> expand_ratios = {0.01, 0.02, 0.05, 0.1};
  std::vector<Rounding> roundings = {Rounding::kNearest, Rounding::kGptq};
  std::vector<Target> targets = {Target::kEmbedding, Target::kInput, Target::kRecurrent,
                                 Target::kDecoder};
  Split select_split = Split::kValid;
  int64_t select_tokens = 50000;  // 0: the whole selection split
  Split report_split = Split::kTest;
  std::vector<int> curve_bits;  // empty: bits−1, bits+1, bits+2 and 8 (within 2..8)
  // The bits-per-row family (quant/row_widths.h), for bits <= 6: the vocabulary matrices' rows
  // at widths 1..7 on the midrise grid with float16 row scales, the other matrices at `bits`,
  // the row budget chosen so that the model takes the storage of the plain per-row candidate
  // at `bits` (32-bit scales); the best non-max per-row clip rule; gptq when it is a rounding.
  // Two candidates: as it is and with every matrix rotated (quant/rotation.h).
  bool rows = true;
  // The reported rows (report split) also measure the divergence from the float model (KL,
  // top-1 agreement); the selection stream never does (choices are made by perplexity).
  bool divergence = true;
  Progress progress;
  Log log;  // progress lines: the candidate running and the job's ETA

  void validate() const;  // throws std::invalid_argument naming the value
};

struct MainJobResult {
  std::vector<Record> candidates;           // on the selection stream, float first
  std::vector<Record> reported;             // on the report split: float first, then one per family
  std::vector<Record> curve;                // the bits curve, on the selection stream (float first)
  size_t recommended = 0;                   // index into reported
  int runner_up = -1;                       // index into reported, -1 when only one family ran
  PairedInterval recommended_vs_runner_up;  // Δ% of the recommendation vs the runner-up
  int cheaper_alternative = -1;  // index into reported: no overhead, not significantly worse
  double seconds = 0;

  const Record& recommendation() const { return reported.at(recommended); }
  // One line: what was selected on which stream, and how.
  std::string selection_line() const;
  // Everything above as one JSON object: "candidates", "reported", "curve" (arrays of records,
  // report/record.h's schema), "recommendation" (the record), "recommended", "runner_up",
  // "recommended_vs_runner_up", "cheaper_alternative", "selection", "seconds".
  nlohmann::json to_json() const;
};

MainJobResult run_main_job(const LoadedModel& model, const Corpus& corpus,
                           const MainJobOptions& options);

// report.md, results.csv, results.json (every record: candidates, reported, curve), the plots;
// written whole into `dir`. `model_label` names the model as the user gave it (a relative
// path). `plot_matrix` is the matrix whose histogram before/after OCS is drawn. Returns notes
// (plots that could not be drawn).
std::vector<std::string> write_main_report(const std::string& dir, const MainJobResult& result,
                                           const LoadedModel& model, const MainJobOptions& options,
                                           const std::string& model_label,
                                           const std::string& plot_matrix);

// Where the cached default model for a corpus and preset lives:
// cache_dir/models/NAME-PRESET[-spm-ID]-annealed.lmq (it may not exist yet).
std::string default_model_path(const Corpus& corpus, const std::string& cache_dir,
                               const std::string& preset);
// What training the default model would do, in one line for the user before it starts: the
// preset, epochs, train tokens, where it lands, and how to skip it (--model, --epochs).
std::string default_model_plan(const Corpus& corpus, const std::string& cache_dir,
                               const std::string& preset, int64_t epochs);

// The default model's learning rate per epoch: 20, then 5 for the last epoch (the annealing step
// of the pytorch/examples recipe, lr / 4, taken at a fixed epoch instead of on a plateau):
// {20, 20, 5} for 3 epochs, {20} for 1. Throws for epochs < 1.
std::vector<double> default_lr_schedule(int64_t epochs);

// The cached default model (default_model_path), trained first (resuming an interrupted run)
// when missing. Returns its path.
std::string ensure_default_model(const Corpus& corpus, const std::string& cache_dir,
                                 const std::string& preset, int64_t epochs,
                                 const torch::Device& device, const TrainOptions& train_options);

// The model config of a training preset (small 2x200, medium 2x650, large 2x1500), vocab 0.
LstmLmConfig preset_config(const std::string& preset);

}  // namespace lmquant
