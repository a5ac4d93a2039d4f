// Perplexity: the protocol on a fixture, and PyTorch's own numbers on the reference checkpoints.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "corpus/batching.h"
#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "lm/evaluate.h"
#include "lm/model_io.h"
#include "test_utils.h"

using namespace lmquant;

TEST(Evaluate, EqualsChunkwiseLogSoftmaxReference) {
  Corpus c = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  torch::manual_seed(5);
  LstmLmConfig cfg;
  cfg.vocab = c.vocab.size();
  cfg.emb = cfg.hidden = 12;
  LstmLm m(cfg);
  auto r = evaluate(m, c.train, {3, 7, {}});
  // Reference: the pytorch/examples loop with LibTorch's own log_softmax.
  torch::NoGradGuard g;
  m->eval();
  auto data = batchify(c.train, 3);
  auto state = m->init_state(3);
  double total = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < data.size(0) - 1; i += 7) {
    auto ch = get_batch(data, i, 7);
    auto lp = torch::log_softmax(m->forward(ch.data, state), 1);
    total -= lp.gather(1, ch.targets.view({-1, 1})).sum().item<double>();
    n += ch.targets.numel();
  }
  EXPECT_EQ(r.tokens, n);
  EXPECT_EQ(r.tokens, 3 * (c.train.numel() / 3 - 1));
  EXPECT_NEAR(r.perplexity, std::exp(total / n), 1e-5 * r.perplexity);
}

TEST(RealData, ReferenceCheckpointsReproducePyTorchPerplexity) {
  LMQUANT_REQUIRE_REAL_DATA(dir);
  const auto models = std::filesystem::path(dir).parent_path() / "models";
  if (!std::filesystem::exists(models)) GTEST_SKIP() << "no reference models beside " << dir;
  CorpusOptions o;
  o.data_dir = dir;
  Corpus c = load_word_corpus(locate_corpus("wikitext2", o));
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(models)) {
    const auto json_path = entry.path() / "model.json";
    if (!std::filesystem::exists(json_path)) continue;
    nlohmann::json j;
    std::ifstream(json_path) >> j;
    LoadedModel l = load_model((entry.path() / "model.pt").string());
    check_vocab_matches(l, c.vocab);
    const double valid = evaluate(l.model, c.valid).perplexity;
    const double test = evaluate(l.model, c.test).perplexity;
    // PyTorch prints 2 decimals; the issue asks for 0.1%.
    EXPECT_NEAR(valid, j["best_valid_ppl"].get<double>(), 0.001 * valid) << entry.path();
    EXPECT_NEAR(test, j["test_ppl"].get<double>(), 0.001 * test) << entry.path();
    EXPECT_NEAR(valid, j["best_valid_ppl"].get<double>(), 0.006) << "to print precision";
    EXPECT_NEAR(test, j["test_ppl"].get<double>(), 0.006) << "to print precision";
    ++checked;
  }
  EXPECT_GT(checked, 0);
}
