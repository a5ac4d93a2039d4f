// Training: a step lowers the loss, checkpoints are written, and a killed run resumes.
#include <filesystem>

#include "corpus/corpus_store.h"
#include "lm/evaluate.h"
#include "lm/model_io.h"
#include "lm/train.h"
#include "test_utils.h"

using namespace lmquant;
using lmquant::test::TempDir;

namespace {

Corpus tiny() { return load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {})); }

LstmLm model_for(const Corpus& c) {
  torch::manual_seed(9);
  LstmLmConfig cfg;
  cfg.vocab = c.vocab.size();
  cfg.emb = cfg.hidden = 16;
  cfg.dropout = 0.1;
  return LstmLm(cfg);
}

TrainOptions opts(const std::string& out) {
  TrainOptions t;
  t.epochs = 2;
  t.batch = 4;
  t.bptt = 5;
  t.lr = 5;
  t.log_interval = 2;
  t.out = out;
  return t;
}

}  // namespace

TEST(Train, OneStepLowersTheLoss) {
  Corpus c = tiny();
  LstmLm m = model_for(c);
  const double before = evaluate(m, c.train, {4, 5, {}}).loss;
  TrainOptions t = opts("");
  t.epochs = 1;
  t.max_batches = 1;
  train(m, c, t);
  EXPECT_LT(evaluate(m, c.train, {4, 5, {}}).loss, before);
}

TEST(Train, WritesBestAndResumableCheckpoints) {
  TempDir tmp;
  Corpus c = tiny();
  LstmLm m = model_for(c);
  auto r = train(m, c, opts(tmp.file("m.lmq")));
  EXPECT_EQ(r.valid_ppl.size(), 2u);
  EXPECT_TRUE(std::filesystem::exists(tmp.file("m.lmq")));
  EXPECT_TRUE(std::filesystem::exists(tmp.file("m.lmq.last")));
  LoadedModel l = load_model(tmp.file("m.lmq"));
  check_vocab_matches(l, c.vocab);
}

TEST(Train, ResumeAfterSimulatedKillIsBitIdentical) {
  TempDir a, b;
  Corpus c = tiny();
  // Reference: two uninterrupted epochs.
  LstmLm ref = model_for(c);
  torch::manual_seed(100);
  train(ref, c, opts(a.file("m.lmq")));
  // Killed after epoch 1's 5th batch: the last resumable state is from batch 4 (interval 2),
  // so batch 5 is lost and redone.
  LstmLm killed = model_for(c);
  torch::manual_seed(100);
  TrainOptions t = opts(b.file("m.lmq"));
  int batches = 0;
  t.should_stop = [&] { return ++batches == 5; };
  auto k = train(killed, c, t);
  EXPECT_TRUE(k.stopped);
  // Resume in a "new process": fresh weights and a different global seed; all state comes from
  // the .last file.
  LstmLm resumed = model_for(c);
  torch::manual_seed(12345);
  TrainOptions r = opts(b.file("m.lmq"));
  r.resume = true;
  auto res = train(resumed, c, r);
  EXPECT_EQ(res.start_epoch, 1);
  auto x = ref->named_weights(), y = resumed->named_weights();
  for (size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(torch::equal(x[i].second, y[i].second)) << x[i].first;
}

TEST(Train, ResumeRefusesAnotherModelOrMissingState) {
  TempDir tmp;
  Corpus c = tiny();
  LstmLm m = model_for(c);
  TrainOptions t = opts(tmp.file("m.lmq"));
  t.resume = true;
  EXPECT_THROW_MESSAGE(train(m, c, t), std::runtime_error, "no resumable state");
  t.resume = false;
  t.epochs = 1;
  train(m, c, t);
  LstmLmConfig other = m->config();
  other.emb = other.hidden = 8;
  LstmLm wrong(other);
  t.resume = true;
  EXPECT_THROW_MESSAGE(train(wrong, c, t), std::runtime_error, "cannot resume");
}

TEST(Train, SameSeedAndThreadsGiveBitIdenticalModels) {
  // Two separate processes, same seed and thread count: the same bytes (weights, validation
  // perplexities in the header), hence the same losses along the way.
  TempDir tmp;
  const std::string args = "train -q --threads 2 --seed 7 --emb 16 --hidden 16 --epochs 2 "
                           "--batch 4 --bptt 5 --corpus " + lmquant::test::tiny_corpus_dir() +
                           " --out ";
  ASSERT_EQ(lmquant::test::run_cli(args + tmp.file("a.lmq")).code, 0);
  ASSERT_EQ(lmquant::test::run_cli(args + tmp.file("b.lmq")).code, 0);
  const Checkpoint a = read_checkpoint(tmp.file("a.lmq")), b = read_checkpoint(tmp.file("b.lmq"));
  EXPECT_EQ(a.meta.at("valid_ppl").get<double>(), b.meta.at("valid_ppl").get<double>());
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i)
    EXPECT_TRUE(torch::equal(a.tensors[i].second, b.tensors[i].second)) << a.tensors[i].first;
}
