// The unit of every experiment: quantize a model with one configuration and evaluate it on one
// stream, against the float model's evaluation of the same stream. `quantize`, `sweep` and the
// main job all produce their records here, so they cannot disagree on what a record holds.
#pragma once
#include <functional>
#include <map>
#include <string>

#include "corpus/corpus.h"
#include "lm/evaluate.h"
#include "lm/model_io.h"
#include "quant/quantize_model.h"
#include "report/record.h"

namespace lmquant {

// A model and a stream to evaluate on (a split, or its first N tokens), with the float model's
// evaluation of that stream computed once, on first use.
class EvalContext {
 public:
  EvalContext(const LoadedModel& model, const Corpus& corpus, Split split, int64_t first_tokens = 0,
              Progress progress = {});

  const LoadedModel& model() const { return *model_; }
  const Provenance& source() const { return source_; }
  const torch::Tensor& stream() const { return stream_; }
  Split split() const { return split_; }
  EvalOptions options() const { return {10, 35, progress_, {}, {nullptr}}; }
  // Whether run() also measures the divergence from the float model (KL, top-1 agreement:
  // lm/divergence.h), running the float model beside each quantized one. On by default; off
  // roughly halves an evaluation's time (the float decoder is most of it).
  void set_divergence(bool on) { divergence_ = on; }
  bool divergence() const { return divergence_; }
  // The float model on this stream (evaluated on the first call).
  const EvalResult& float_eval() const;
  Record float_record() const;

  // The calibration slice of train for error-compensating rounding (config.calib_sequences
  // sequences; quant/calibration.h), drawn on first use.
  const Calibration& calibration(const QuantConfig& config) const;
  // quantize_model with this context's calibration where the configuration needs it.
  QuantizedModel quantize(const QuantConfig& config) const;

  // Quantizes with `config`, evaluates the folded model, and returns the record; with
  // repeats K > 0 also K re-quantizations with jittered α (QuantConfig::repeat = 1..K), whose
  // perplexities become the record's rounding spread. `keep` receives the quantized model.
  Record run(const QuantConfig& config, int repeats = 0, QuantizedModel* keep = nullptr) const;

 private:
  const LoadedModel* model_;
  Split split_;
  Provenance source_;
  torch::Tensor stream_;
  Progress progress_;
  torch::Tensor train_;
  mutable std::map<int64_t, Calibration> calibrations_;
  bool divergence_ = true;
  mutable bool have_float_ = false;
  mutable EvalResult float_eval_;
};

using Log = std::function<void(const std::string&)>;

}  // namespace lmquant
