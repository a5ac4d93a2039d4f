#include "lm/evaluate.h"

#include <chrono>
#include <cmath>

#include "corpus/batching.h"
#include "lm/divergence.h"
#include "lm/nll.h"
#include "util/interrupt.h"

namespace lmquant {

namespace {

// One chunk of both models: the decoder inputs, each decoder's logits in vocabulary blocks, KL,
// top-1 and both NLLs from one pass (lm/divergence.h). Off the CPU: whole logits, log_softmax.
PairedNll paired_chunk(const LstmLmImpl& model, const torch::Tensor& top, const LstmLmImpl& ref,
                       const torch::Tensor& ref_top, const torch::Tensor& targets,
                       const EngineHooks& engine) {
  const auto h = model.decoder_input(top);
  const auto hr = ref.decoder_input(ref_top);
  if (engine.decoder && !engine.decoder_logits)
    throw std::invalid_argument(
        "this engine's decoder gives no logits: no divergence from a "
        "reference model with it");
  const bool cpu = h.device().is_cpu() && hr.device().is_cpu();
  if (!cpu) return paired_nll_dense(ref.logits(ref_top), model.logits(top), targets);
  const BlockLogits q = engine.decoder_logits
                            ? engine.decoder_logits(h)
                            : float_decoder_logits(h, model.decoder_weight, model.decoder_bias);
  const BlockLogits p = float_decoder_logits(hr, ref.decoder_weight, ref.decoder_bias);
  return paired_blocked_nll(h.size(0), model.config().vocab, targets, 1024, p, q);
}

}  // namespace

double EvalResult::mean_kl() const {
  return tokens > 0 ? total_kl / static_cast<double>(tokens) : 0;
}

double EvalResult::top1_agreement() const {
  return tokens > 0 ? static_cast<double>(top1_agree) / static_cast<double>(tokens) : 0;
}

EvalResult evaluate(LstmLm& model, const torch::Tensor& stream, const EvalOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  auto data = batchify(stream, options.batch).to(model->device());
  auto state = model->init_state(options.batch);
  LstmLm ref = options.reference;
  const bool paired = !ref.is_empty();
  LstmState ref_state;
  const bool ref_was_training = paired && ref->is_training();
  if (paired) {
    if (ref->config().vocab != model->config().vocab)
      throw std::invalid_argument("the reference model's vocabulary (" +
                                  std::to_string(ref->config().vocab) + ") is not the model's (" +
                                  std::to_string(model->config().vocab) + ")");
    ref->eval();
    ref_state = ref->init_state(options.batch);
  }
  EvalResult r;
  const int64_t rows = data.size(0);
  for (int64_t i = 0; i < rows - 1; i += options.bptt) {
    throw_if_interrupted("during evaluation");
    auto chunk = get_batch(data, i, options.bptt);
    auto top = options.engine.hidden ? options.engine.hidden(chunk.data, state)
                                     : model->hidden_states(chunk.data, state);
    // The float decoder: one product and the one-pass NLL (lm/nll.h). The vocabulary-blocked
    // decoder_nll measured slower here (bench eval, 350 rows, Zen 5, 2 threads: 43 ms vs 39 ms),
    // so it is the default only where the chunk's [N, V] logits would pass kHeldLogitsBytes
    // (a WikiText-103 vocabulary: 350 x 267,735 floats = 375 MB); an engine's decoder
    // (EngineHooks::decoder) replaces both.
    double nll;
    if (paired) {
      const auto ref_top = ref->hidden_states(chunk.data, ref_state);
      const PairedNll d = paired_chunk(*model, top, *ref, ref_top, chunk.targets, options.engine);
      nll = d.nll_q;
      r.total_kl += d.kl;
      r.top1_agree += d.top1_agree;
      r.reference_nll += d.nll_p;
      r.chunk_kl.push_back(d.kl);
      r.chunk_top1.push_back(d.top1_agree);
    } else {
      const double logits_bytes = 4.0 * static_cast<double>(chunk.targets.numel()) *
                                  static_cast<double>(model->config().vocab);
      if (options.engine.decoder)
        nll = options.engine.decoder(model->decoder_input(top), chunk.targets);
      else if (logits_bytes > kHeldLogitsBytes)
        nll = decoder_nll(model->decoder_input(top), model->decoder_weight, model->decoder_bias,
                          chunk.targets);
      else
        nll = sum_nll(model->logits(top), chunk.targets);
    }
    if (!std::isfinite(nll)) {
      const std::string bad = model->first_nonfinite_weight();
      throw std::runtime_error(
          "the log-probabilities of evaluation chunk " + std::to_string(r.chunk_nll.size() + 1) +
          " (tokens " + std::to_string(i * options.batch) + " onwards) are not finite: " +
          (bad.empty() ? std::string("every weight of the model is finite, so an activation "
                                     "overflowed") +
                             (options.engine.decoder ? " in the engine" : "")
                       : "the model's tensor " + bad + " holds NaN or Inf"));
    }
    r.total_nll += nll;
    r.tokens += chunk.targets.numel();
    r.chunk_nll.push_back(nll);
    r.chunk_tokens.push_back(chunk.targets.numel());
    if (options.progress)
      options.progress({"eval", r.tokens, options.batch * (rows - 1), "tok", "", false});
  }
  model->train(was_training);
  if (paired) ref->train(ref_was_training);
  r.loss = r.total_nll / static_cast<double>(r.tokens);
  r.perplexity = perplexity_of_loss(r.loss);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.tokens_per_s = static_cast<double>(r.tokens) / r.seconds;
  if (options.progress) options.progress({"eval", r.tokens, r.tokens, "tok", "", true});
  return r;
}

double word_normalised_perplexity(double loss, int64_t tokens, int64_t words) {
  if (tokens <= 0 || words <= 0)
    throw std::invalid_argument("word-normalised perplexity needs positive token and word counts");
  return perplexity_of_loss(loss * static_cast<double>(tokens) / static_cast<double>(words));
}

double perplexity_of_loss(double mean_nll) { return std::exp(mean_nll); }

}  // namespace lmquant
