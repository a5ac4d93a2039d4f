// Report records and their views. One Record per evaluated configuration; Markdown and CSV are
// views of the same records, JSON is the records. A report directory (report.md, results.csv,
// results.json, plots) is staged in a temporary folder and renamed into place whole, so it is
// never left half-written.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "quant/quantize_model.h"

namespace lmquant {

struct Record {
  // model and data
  std::string model, model_sha256, corpus, split;
  std::string model_desc;  // "2x200 LSTM, emb 200, ..."
  int64_t tokens = 0;
  // configuration
  std::string method = "float";  // float, clip, ocs
  std::string clip;              // clip rule ("" for float)
  int bits = 32;
  std::string granularity;
  double expand_ratio = 0;
  bool grid_aware = false;
  // tokenizer: "word" or "spm:<sha256>"; tokens_per_word = split tokens / split words (1 for word)
  std::string tokenizer = "word";
  double tokens_per_word = 1;
  // results (perplexity is per token; see word_perplexity for the per-word value)
  double perplexity = 0, float_perplexity = 0;
  double delta_percent = 0;               // 100 (ppl / float_ppl - 1)
  double params_overhead_percent = 0;     // extra stored weights, % of the float model's
  double macs_overhead_percent = 0;       // extra multiply-adds per token, %
  double size_bits = 0;                   // whole model
  double seconds = 0;                     // quantize + evaluate
  nlohmann::json matrices = nlohmann::json::array();  // per-matrix α, mse, ...

  // Word-normalised: exp(loss · tokens / words) = perplexity^tokens_per_word (lm/evaluate.h).
  double word_perplexity() const;
  double float_word_perplexity() const;

  std::string label() const;  // "ocs r=0.05 mse", "clip kl", "float"
  nlohmann::json to_json() const;
  static Record from_json(const nlohmann::json& j);
};

// A record of a quantized (or, with qm == nullptr, the float) evaluation.
Record make_record(const QuantConfig* config, const QuantizedModel* qm, double perplexity,
                   double float_perplexity, int64_t tokens, double seconds);

std::string markdown_table(const std::vector<Record>& records);
std::string csv(const std::vector<Record>& records);
nlohmann::json records_json(const std::vector<Record>& records);

// The record with the lowest perplexity among the quantized ones (nullptr if none).
const Record* best_quantized(const std::vector<Record>& records);

// Writes `dir` whole: calls `fill(staging_dir)` to put files in a staging folder beside `dir`,
// then replaces `dir` with it. Throws naming `dir` when the parent is not writable.
void write_report_dir(const std::string& dir, const std::function<void(const std::string&)>& fill);

}  // namespace lmquant
