// Perplexity, the pytorch/examples protocol: the stream batchified into `batch` columns, chunks of
// `bptt` steps, the hidden state carried across chunks (never reset), dropout off, and
//   perplexity = exp(Σ NLL / number of targets),  targets = batch · (rows − 1).
#pragma once
#include <torch/torch.h>

#include "lm/lstm_lm.h"
#include "util/progress.h"

namespace lmquant {

struct EvalOptions {
  int64_t batch = 10;
  int64_t bptt = 35;
  Progress progress;  // reports targets done
};

struct EvalResult {
  double total_nll = 0;   // Σ NLL over all targets (nats)
  int64_t tokens = 0;     // number of targets
  double loss = 0;        // total_nll / tokens
  double perplexity = 0;  // exp(loss)
  double seconds = 0;
  double tokens_per_s = 0;
};

EvalResult evaluate(LstmLm& model, const torch::Tensor& stream, const EvalOptions& options = {});

}  // namespace lmquant
