// The one result type. A Record is one evaluated configuration: where it came from (Provenance),
// what was evaluated (a typed QuantConfig; method float for the float model), the evaluation
// itself (lm/evaluate.h: loss, targets, perplexity, seconds, the per-chunk NLL), the comparison
// with the float model on the same stream (Δ% with its paired-bootstrap interval), the rounding
// spread where repeats were run, the model's accounting and the per-matrix report.
//
// One JSON schema: `quantize --json` prints to_json(), `sweep` writes one to_json() per line,
// `report` writes an array of them to results.json; from_json reads all three.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "corpus/corpus.h"
#include "lm/evaluate.h"
#include "lm/model_io.h"
#include "quant/quantize_model.h"
#include "report/bootstrap.h"

namespace lmquant {

// lmquant's version (CMake's PROJECT_VERSION), recorded in every Provenance.
std::string lmquant_version();

struct Provenance {
  std::string model;         // the path as given (shown, not compared: a copy is the same model)
  std::string model_sha256;  // of the model file
  std::string model_desc;    // "2x200 LSTM, emb 200, vocab 33278, untied"
  std::string corpus;        // registered name or folder
  std::string split;         // train, valid or test
  std::string split_sha256;  // of the split's text file
  int64_t first_tokens = 0;  // 0: the whole split; else its first N tokens (a selection slice)
  std::string tokenizer = "word";             // "word" or "spm:<sha256>"
  // The vocabulary's hash (Vocab::hash) when it came from a file with the model (--vocab); ""
  // when the corpus built it (then the corpus and tokenizer determine it).
  std::string vocab_sha256;
  int64_t split_tokens = 0, split_words = 0;  // of the stream evaluated
  std::string version;                        // lmquant_version()

  double tokens_per_word() const;
  // The first field, among those that make two evaluations comparable, in which this differs
  // from `o`: "" when none does. Compared: model_sha256, corpus, tokenizer, vocab_sha256, version, and with
  // `same_stream` also split, split_sha256 and first_tokens.
  std::string differs_from(const Provenance& o, bool same_stream = true) const;
  std::string value_of(const std::string& field) const;
  nlohmann::json to_json() const;
  static Provenance from_json(const nlohmann::json& j);
};

// The provenance of evaluating `model` on `split` of `corpus` (first_tokens 0: all of it).
Provenance provenance_of(const LoadedModel& model, const Corpus& corpus, Split split,
                         int64_t first_tokens = 0);
// The stream a provenance names: the split, or its first `first_tokens` tokens.
torch::Tensor stream_of(const Corpus& corpus, Split split, int64_t first_tokens = 0);

// Where a sweep's record sits in its grid (experiment/sweep.h): the grid's identity, the cell's
// position in it and the shard that ran it. Empty (grid_sha256 "") outside sweeps.
struct SweepCell {
  std::string grid_sha256;        // of the grid's cell configurations, in grid order
  int64_t index = -1;             // the cell's position in the grid; -1: the float record
  int64_t cells = 0;              // cells in the grid
  int64_t shard = 0, shards = 1;  // the shard that ran it (cells with index ≡ shard mod shards)
  std::vector<std::string> grid;  // the float record only: every cell's label, in grid order
  bool empty() const { return grid_sha256.empty(); }
  nlohmann::json to_json() const;
  static SweepCell from_json(const nlohmann::json& j);
};

struct Record {
  Provenance source;
  // The configuration as applied (quant/matrix_plan.h applied_config: no setting that applied
  // to no matrix; bits_per_weight with its solved row budget); method float: the float model.
  // Labels, tables and plots show it.
  QuantConfig config;
  // The configuration as asked (what a sweep's grid or a command line named); = config unless
  // a setting did not apply or a size was solved. JSON "asked_config", only when they differ.
  QuantConfig asked;
  EvalResult eval;              // on source's stream
  double float_perplexity = 0;  // the float model's on the same stream
  PairedInterval vs_float;      // Δ% vs float, 95% paired-bootstrap interval over chunks
  // Divergence from the float model on the same positions (evaluations with a reference,
  // lm/evaluate.h; resamples of both 0 and means 0 when not measured): mean KL(p_float ‖ p) in
  // nats per token and the fraction of positions whose most likely next token is the float
  // model's, each with its 95% interval over chunks (report/bootstrap.h mean_bootstrap).
  MeanInterval kl_to_float;
  MeanInterval top1_agreement;
  // Rounding spread: perplexities of `repeat` re-quantizations with α jittered (QuantConfig::
  // repeat = 1..K), empty when none were run.
  std::vector<double> repeat_perplexities;
  // Accounting (the float model: after = before).
  int64_t params_before = 0, params_after = 0, macs_before = 0, macs_after = 0;
  double size_bits = 0, float_size_bits = 0;
  double quantize_seconds = 0;
  std::vector<MatrixReport> matrices;
  // refit_decoder_bias: the mean KL to the float model on the calibration positions (nats) at
  // the float bias, then after each iteration (quant/bias_refit.h); empty when not refitted.
  std::vector<double> bias_refit_kl;
  SweepCell sweep;  // set by sweeps (JSON "sweep"), empty elsewhere

  bool is_float() const { return config.method == Method::kFloat; }
  bool has_divergence() const { return eval.has_divergence(); }
  std::string label() const { return config.label(); }
  double perplexity() const { return eval.perplexity; }
  // Word-normalised (lm/evaluate.h): exp(loss · tokens / words); = perplexity for word tokens.
  double word_perplexity() const;
  // Stored bits per weight of the float model: size_bits / params_before (quantized matrices at
  // their widths, their scales, every other weight at 32 bits). 32 for the float model.
  double bits_per_weight() const;
  double params_overhead_pct() const;
  double macs_overhead_pct() const;
  Spread spread() const { return spread_of(repeat_perplexities); }

  nlohmann::json to_json() const;
  static Record from_json(const nlohmann::json& j);
};

// The record of `eval` (of `config` as asked, quantized as `qm`, whose config is the applied
// one; qm nullptr for the float model, whose
// accounting is taken from `float_model`) against the float model's evaluation `float_eval` of
// the same stream.
Record make_record(const Provenance& source, const QuantConfig& config, const QuantizedModel* qm,
                   const LstmLmImpl& float_model, const EvalResult& eval,
                   const EvalResult& float_eval);

// Throws std::runtime_error naming the field and both values when two records differ in
// provenance (with same_stream false, the split may differ: a report's selection and test rows).
void check_same_provenance(const std::vector<Record>& records, bool same_stream = true);

}  // namespace lmquant
