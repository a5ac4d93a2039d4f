// Training, the pytorch/examples word_language_model recipe: plain SGD (p -= lr · grad), gradient
// norm clipped to `clip`, truncated BPTT with the hidden state carried (detached) across batches,
// dropout, and lr /= 4 after an epoch whose validation loss did not improve (the plateau rule) —
// or an explicit schedule: one learning rate per epoch (`lr_schedule`, e.g. {5, 1.25} anneals a
// trained model in two epochs), the plateau rule then off.
//
// Continuing a trained model (`from_trained`, `lmquant train --init M`): the model passed in is
// evaluated on valid first; that is the best so far (written to `out` at once), so `out` always
// holds the best of the model given and every epoch after it.
//
// Files: `out` holds the best model so far (by validation perplexity); `out + ".last"` holds the
// resumable state, rewritten every `log_interval` batches and at each epoch end: weights, the
// carried hidden state, the RNG state, epoch, batch, lr, best loss and history. Both are written
// atomically, so a killed run resumes (`resume`) losing at most one log interval.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "corpus/corpus.h"
#include "lm/lstm_lm.h"
#include "util/progress.h"

namespace lmquant {

struct TrainOptions {
  int64_t epochs = 3;
  int64_t batch = 20;
  int64_t bptt = 35;
  double lr = 20;
  // One learning rate per epoch (epoch e runs at lr_schedule[e − 1]); when set, `epochs` must
  // equal its length and the plateau rule is off. Empty: `lr`, divided by 4 on a plateau.
  std::vector<double> lr_schedule;
  // The model passed in is trained already (--init): its valid perplexity is the best so far.
  bool from_trained = false;
  double clip = 0.25;
  int64_t log_interval = 200;  // batches between log lines and resumable checkpoints
  // After this many batches of the run (the first one, a warm-up, not timed), one log line with
  // the measured tokens/s and the time the rest of the run will take (0: no such line).
  int64_t eta_batches = 10;
  int64_t max_batches = 0;  // stop each epoch after this many batches (0: all); tests, benches
  std::string out;          // best-model path; empty: no files
  bool resume = false;
  bool fused_loss = true;  // lmquant's fused softmax-cross-entropy (false: LibTorch's)
  Progress progress;
  std::function<void(const std::string&)> log;  // one line per log interval / epoch
  // Checked after every batch; true stops at once, like a kill: nothing more is written, so the
  // run resumes from the last interval's state (SIGINT handling and tests use it).
  std::function<bool()> should_stop;
};

// Throws std::invalid_argument naming the setting (epochs, batch, bptt, lr, schedule).
void validate(const TrainOptions& options);
// "5,1.25" -> {5, 1.25}; throws std::invalid_argument for an empty list, a value that is not a
// positive number.
std::vector<double> parse_lr_schedule(const std::string& text);

struct TrainResult {
  double initial_valid_ppl = 0;   // from_trained: the model's valid perplexity before training
  std::vector<double> valid_ppl;  // per epoch
  double best_valid_ppl = 0;
  double train_tokens_per_s = 0;  // over this run's training batches (no evaluation time)
  int64_t train_tokens = 0;
  int64_t start_epoch = 1;  // > 1 when resumed
  bool stopped = false;     // should_stop ended the run
};

TrainResult train(LstmLm& model, const Corpus& corpus, const TrainOptions& options);

}  // namespace lmquant
