// Perplexity, the pytorch/examples protocol: the stream batchified into `batch` columns, chunks of
// `bptt` steps, the hidden state carried across chunks (never reset), dropout off, and
//   perplexity = exp(Σ NLL / number of targets),  targets = batch · (rows − 1).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "lm/lstm_lm.h"
#include "lm/nll.h"
#include "util/progress.h"

namespace lmquant {

// The most [N, V] logits a float evaluation holds for one chunk (64 MiB: WikiText-2's 350 x
// 33,278 floats are 47 MB); beyond it the decoder's NLL is computed over vocabulary blocks
// (lm/nll.h's decoder_nll) and no [N, V] tensor exists.
inline constexpr double kHeldLogitsBytes = 64.0 * 1024 * 1024;

// What runs the model in place of its own float ops: an integer engine (src/engine/int8_engine.h)
// plugs in here; an empty hook leaves that part to the model.
struct EngineHooks {
  // Top-layer outputs [T, B, H] for tokens [T, B], advancing `state` (LstmLmImpl::hidden_states).
  std::function<torch::Tensor(const torch::Tensor& tokens, LstmState& state)> hidden;
  // Σ NLL of a chunk from the decoder input [N, H'] (LstmLmImpl::decoder_input) and targets [N].
  std::function<double(const torch::Tensor& h, const torch::Tensor& targets)> decoder;
  // The same per row: NLL_r [N] float64 (the sentence scorer's per-token log-probabilities);
  // set whenever `decoder` is, by engines that score sentences.
  std::function<torch::Tensor(const torch::Tensor& h, const torch::Tensor& targets)> decoder_rows;
  // The decoder's logits for the decoder input [N, H'] as a block producer (lm/nll.h), for the
  // divergence from a reference model (EvalOptions::reference); set by engines with `decoder`.
  std::function<BlockLogits(const torch::Tensor& h)> decoder_logits;
};

struct EvalOptions {
  int64_t batch = 10;
  int64_t bptt = 35;
  Progress progress;  // reports targets done
  EngineHooks engine;
  // A reference model (the float model) run beside it on the same chunks: the evaluation then
  // also measures KL(p_reference ‖ p_model) and top-1 agreement per position (lm/divergence.h),
  // the NLL coming from the same blocked pass. Its vocabulary must be the model's.
  LstmLm reference{nullptr};
};

struct EvalResult {
  double total_nll = 0;   // Σ NLL over all targets (nats)
  int64_t tokens = 0;     // number of targets
  double loss = 0;        // total_nll / tokens
  double perplexity = 0;  // perplexity_of_loss(loss)
  double seconds = 0;
  double tokens_per_s = 0;
  // Per evaluation chunk (batch × bptt targets, the last one shorter): Σ NLL and the number of
  // targets, in stream order. Two evaluations of the same stream have the same chunks, so they
  // can be compared chunk by chunk (report/bootstrap.h).
  std::vector<double> chunk_nll;
  std::vector<int64_t> chunk_tokens;
  // With a reference (EvalOptions::reference), else empty: per chunk Σ KL(p_ref ‖ p) in nats and
  // the positions whose most likely next token is the reference's; their totals; the
  // reference's own Σ NLL.
  std::vector<double> chunk_kl;
  std::vector<int64_t> chunk_top1;
  double total_kl = 0;
  int64_t top1_agree = 0;
  double reference_nll = 0;
  bool has_divergence() const { return !chunk_kl.empty(); }
  double mean_kl() const;         // total_kl / tokens, nats per token
  double top1_agreement() const;  // top1_agree / tokens
};

// The one definition of perplexity: exp(mean NLL per scored token), mean_nll in nats.
double perplexity_of_loss(double mean_nll);

EvalResult evaluate(LstmLm& model, const torch::Tensor& stream, const EvalOptions& options = {});

// Word-normalised perplexity, comparable across tokenizers:
//   word_ppl = exp(total NLL / words) ≈ exp(loss · tokens / words)
// where loss is the mean NLL per scored token, `tokens` the split's token count and `words` its
// word count (Python str.split() words plus one <eos> per line). The protocol scores all but
// < 2·batch tokens of a split, so the split's NLL is taken as loss · tokens. For the word
// tokenizer tokens = words and this is exactly the per-token perplexity. Example: 3 subword
// pieces per 2 words at loss 3.0 nats/piece give exp(3.0 · 3/2) = exp(4.5) ≈ 90.0 per word.
double word_normalised_perplexity(double loss, int64_t tokens, int64_t words);

}  // namespace lmquant
