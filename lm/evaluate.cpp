#include "lm/evaluate.h"

#include <chrono>
#include <cmath>

#include "corpus/batching.h"
#include "lm/nll.h"
#include "util/interrupt.h"

namespace lmquant {

EvalResult evaluate(LstmLm& model, const torch::Tensor& stream, const EvalOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  const bool was_training = model->is_training();
  model->eval();
  auto data = batchify(stream, options.batch).to(model->device());
  auto state = model->init_state(options.batch);
  EvalResult r;
  const int64_t rows = data.size(0);
  for (int64_t i = 0; i < rows - 1; i += options.bptt) {
    throw_if_interrupted("during evaluation");
    auto chunk = get_batch(data, i, options.bptt);
    auto top = options.engine.hidden ? options.engine.hidden(chunk.data, state)
                                     : model->hidden_states(chunk.data, state);
    // The float decoder: one product and the one-pass NLL (lm/nll.h). The vocabulary-blocked
    // decoder_nll measured slower here (bench eval, 350 rows, Zen 5, 2 threads: 43 ms vs 39 ms),
    // so it is not the default; an engine's decoder (EngineHooks::decoder) replaces both.
    const double nll = options.engine.decoder
                           ? options.engine.decoder(model->decoder_input(top), chunk.targets)
                           : sum_nll(model->logits(top), chunk.targets);
    r.total_nll += nll;
    r.tokens += chunk.targets.numel();
    r.chunk_nll.push_back(nll);
    r.chunk_tokens.push_back(chunk.targets.numel());
    if (options.progress)
      options.progress({"eval", r.tokens, options.batch * (rows - 1), "tok", "", false});
  }
  model->train(was_training);
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
