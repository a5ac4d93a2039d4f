#include "experiment/experiment.h"

#include "util/runtime.h"

namespace lmquant {

EvalContext::EvalContext(const LoadedModel& model, const Corpus& corpus, Split split,
                         int64_t first_tokens, Progress progress)
    : model_(&model),
      split_(split),
      source_(provenance_of(model, corpus, split, first_tokens)),
      stream_(stream_of(corpus, split, first_tokens)),
      progress_(std::move(progress)),
      train_(corpus.train) {}

const Calibration& EvalContext::calibration(const QuantConfig& config) const {
  auto it = calibrations_.find(config.calib_sequences);
  if (it == calibrations_.end()) {
    CalibrationOptions o;
    o.sequences = config.calib_sequences;
    it = calibrations_.emplace(config.calib_sequences, make_calibration(train_, o)).first;
  }
  return it->second;
}

QuantizedModel EvalContext::quantize(const QuantConfig& config) const {
  if (!config.needs_calibration()) return quantize_model(model_->model, config);
  return quantize_model(model_->model, config, &calibration(config));
}

const EvalResult& EvalContext::float_eval() const {
  if (!have_float_) {
    LstmLm m = model_->model;
    float_eval_ = evaluate(m, stream_, options());
    have_float_ = true;
  }
  return float_eval_;
}

Record EvalContext::float_record() const {
  const EvalResult& fl = float_eval();
  return make_record(source_, QuantConfig{}, nullptr, *model_->model, fl, fl);
}

Record EvalContext::run(const QuantConfig& config, int repeats, QuantizedModel* keep) const {
  if (config.method == Method::kFloat) return float_record();
  if (repeats < 0)
    throw std::invalid_argument("repeats must be >= 0, got " + std::to_string(repeats));
  const EvalResult& fl = float_eval();
  QuantizedModel qm = quantize(config);
  EvalOptions eo = options();
  if (divergence_) eo.reference = model_->model;
  const EvalResult r = evaluate(qm.folded, stream_, eo);
  release_free_memory();  // the quantization's and evaluation's leftovers (util/runtime.h)
  Record rec = make_record(source_, config, &qm, *model_->model, r, fl);
  for (int k = 1; k <= repeats; ++k) {
    QuantConfig again = config;
    again.repeat = k;
    QuantizedModel qk = quantize(again);
    rec.repeat_perplexities.push_back(evaluate(qk.folded, stream_, options()).perplexity);
  }
  if (keep) *keep = std::move(qm);
  return rec;
}

}  // namespace lmquant
