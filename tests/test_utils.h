// Shared test helpers: temporary folders, the real-data location, tensor comparison, running the
// CLI, and EXPECT_THROW_MESSAGE.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "lm/lstm_lm.h"

namespace lmquant {
struct QuantizedModel;
}

namespace lmquant::test {

// A fresh empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_text(const std::string& path, const std::string& text);

// $LMQUANT_DATA (the folder holding wikitext-2/), or "" when unset or without the corpus.
std::string real_data_dir();
// The reference model folder (../shared/models/<name>, located from $LMQUANT_DATA), or "".
std::string reference_model_dir(const std::string& name);

#define LMQUANT_REQUIRE_REAL_DATA(dir)                                                   \
  const std::string dir = ::lmquant::test::real_data_dir();                              \
  if (dir.empty())                                                                       \
  GTEST_SKIP() << "real WikiText-2 not available: set LMQUANT_DATA to a folder holding " \
                  "wikitext-2/{train,valid,test}.txt (.ci/run sets it to ../shared/data)"

// Max |a - b| / max(|b|, tiny) over elements.
double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b);

struct CliResult {
  int code = 0;
  std::string out, err;
};
// Runs build/lmquant with the arguments (a shell string), capturing stdout and stderr.
CliResult run_cli(const std::string& args);

// Runs a bash script with $LMQUANT set to build/lmquant, capturing stdout and stderr.
CliResult run_shell(const std::string& script);

// The tiny fixture corpus folder (tests/data/tiny: train/valid/test.txt).
std::string tiny_corpus_dir();

// The tests' tiny model: an LSTM LM over `vocab` ids with 16-wide embedding and hidden state
// (the other settings default), initialised right after torch::manual_seed(seed).
lmquant::LstmLm tiny_lstm(int64_t vocab, uint64_t seed, bool tied = false);
// A stack of 3 layers of their own sizes, the middle one projected: emb 6 (5 when tied) -> H 8
// -> H 9 (proj 4) -> H 5; vocabulary 17, no dropout.
lmquant::LstmLmConfig stack_config(bool tied);

// Perplexities on `tokens` (batch 4, bptt 6) of the simulated model `qm.folded` and of the int8
// engine running `packed`, the packed file saved from `qm`: the engine's check is that the two
// agree (the tests ask for 0.5%).
struct EnginePerplexities {
  double simulated = 0, int8_engine = 0;
};
EnginePerplexities simulated_and_int8_engine(const lmquant::QuantizedModel& qm,
                                             const std::string& packed,
                                             const torch::Tensor& tokens);

}  // namespace lmquant::test

#define EXPECT_THROW_MESSAGE(stmt, exc, substr)                             \
  do {                                                                      \
    try {                                                                   \
      stmt;                                                                 \
      ADD_FAILURE() << "expected " #exc " containing '" << (substr) << "'"; \
    } catch (const exc& e) {                                                \
      EXPECT_NE(std::string(e.what()).find(substr), std::string::npos)      \
          << "message was: " << e.what();                                   \
    }                                                                       \
  } while (0)
