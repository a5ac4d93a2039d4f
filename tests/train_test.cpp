// Training: a step lowers the loss, checkpoints are written, and a killed run resumes.
#include "lm/train.h"

#include <filesystem>

#include "corpus/corpus_store.h"
#include "experiment/main_job.h"
#include "lm/evaluate.h"
#include "lm/model_io.h"
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
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_TRUE(torch::equal(x[i].second, y[i].second)) << x[i].first;
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
  const std::string args =
      "train -q --threads 2 --seed 7 --emb 16 --hidden 16 --epochs 2 "
      "--batch 4 --bptt 5 --corpus " +
      lmquant::test::tiny_corpus_dir() + " --out ";
  ASSERT_EQ(lmquant::test::run_cli(args + tmp.file("a.lmq")).code, 0);
  ASSERT_EQ(lmquant::test::run_cli(args + tmp.file("b.lmq")).code, 0);
  const Checkpoint a = read_checkpoint(tmp.file("a.lmq")), b = read_checkpoint(tmp.file("b.lmq"));
  EXPECT_EQ(a.meta.at("valid_ppl").get<double>(), b.meta.at("valid_ppl").get<double>());
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i)
    EXPECT_TRUE(torch::equal(a.tensors[i].second, b.tensors[i].second)) << a.tensors[i].first;
}

TEST(Train, ScheduleAndInitContinueATrainedModelAndResume) {
  TempDir tmp;
  Corpus c = tiny();
  LstmLm base = model_for(c);
  TrainOptions t = opts(tmp.file("base.lmq"));
  t.epochs = 1;
  train(base, c, t);
  const double base_valid = evaluate(base, c.valid, {10, 5, {}}).perplexity;
  // Continue it with one learning rate per epoch: the model given is the best so far.
  std::vector<std::string> lr_seen;
  LstmLm cont = load_model(tmp.file("base.lmq")).model;
  TrainOptions a = opts(tmp.file("cont.lmq"));
  a.lr_schedule = parse_lr_schedule("2,0.5");
  a.from_trained = true;
  a.log = [&](const std::string& l) { lr_seen.push_back(l); };
  const TrainResult r = train(cont, c, a);
  EXPECT_NEAR(r.initial_valid_ppl, base_valid, 1e-9 * base_valid);
  ASSERT_EQ(r.valid_ppl.size(), 2u);
  EXPECT_LE(r.best_valid_ppl, base_valid);  // the start counts: the best is never worse
  std::string all;
  for (const auto& l : lr_seen) all += l + "\n";
  EXPECT_NE(all.find("lr 2.00"), std::string::npos) << all;  // epoch 1 at 2
  EXPECT_NE(all.find("lr 0.50"), std::string::npos) << all;  // epoch 2 at 0.5
  EXPECT_EQ(all.find("lr 5.00"), std::string::npos) << all;  // not the plateau rule's lr
  // Killed in epoch 2 and resumed: the same weights as the uninterrupted run.
  LstmLm killed = load_model(tmp.file("base.lmq")).model;
  TrainOptions k = opts(tmp.file("killed.lmq"));
  k.lr_schedule = a.lr_schedule, k.from_trained = true;
  int batches = 0;
  k.should_stop = [&] { return ++batches == 13; };
  LstmLm again = load_model(tmp.file("base.lmq")).model;
  TrainOptions u = opts(tmp.file("again.lmq"));
  u.lr_schedule = a.lr_schedule, u.from_trained = true;
  torch::manual_seed(3);  // the same dropout draws from here on
  train(again, c, u);
  torch::manual_seed(3);
  EXPECT_TRUE(train(killed, c, k).stopped);
  LstmLm resumed = model_for(c);
  TrainOptions rr = opts(tmp.file("killed.lmq"));
  rr.lr_schedule = a.lr_schedule, rr.from_trained = true, rr.resume = true;
  const auto rres = train(resumed, c, rr);
  EXPECT_EQ(rres.initial_valid_ppl, r.initial_valid_ppl);
  auto x = again->named_weights(), y = resumed->named_weights();
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_TRUE(torch::equal(x[i].second, y[i].second)) << x[i].first;
  // Another schedule cannot resume it; a schedule must match the epochs; bad lists are refused.
  rr.lr_schedule = {2, 0.25};
  EXPECT_THROW_MESSAGE(train(resumed, c, rr), std::runtime_error, "learning-rate schedule 2,0.5");
  TrainOptions bad = opts("");
  bad.lr_schedule = {1, 2, 3};
  EXPECT_THROW_MESSAGE(validate(bad), std::invalid_argument, "has 3 epochs, not the 2");
  EXPECT_THROW_MESSAGE(parse_lr_schedule("5,-1"), std::invalid_argument, "'-1'");
  EXPECT_THROW_MESSAGE(parse_lr_schedule(""), std::invalid_argument, "empty");
  EXPECT_EQ(default_lr_schedule(3), (std::vector<double>{20, 20, 5}));
  EXPECT_EQ(default_lr_schedule(1), (std::vector<double>{20}));
}

TEST(Train, CliInitAndScheduleFlags) {
  TempDir tmp;
  const std::string corpus = " --batch 4 --bptt 5 --corpus " + lmquant::test::tiny_corpus_dir();
  ASSERT_EQ(lmquant::test::run_cli("train -q --emb 8 --hidden 8 --epochs 1 --out " +
                                   tmp.file("a.lmq") + corpus)
                .code,
            0);
  auto r = lmquant::test::run_cli("train -q --init " + tmp.file("a.lmq") +
                                  " --lr-schedule 5,1.25 --out " + tmp.file("b.lmq") + corpus);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("at the start"), std::string::npos) << r.out;
  EXPECT_EQ(read_checkpoint(tmp.file("b.lmq.last")).meta["train_state"]["lr_schedule"],
            nlohmann::json({5, 1.25}));
  r = lmquant::test::run_cli("train -q --init " + tmp.file("a.lmq") + " --hidden 9 --out " +
                             tmp.file("c.lmq") + corpus);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("--hidden with --init"), std::string::npos) << r.err;
  r = lmquant::test::run_cli("train -q --init " + tmp.file("a.lmq") +
                             " --lr-schedule 5,1.25 --epochs 3 --out " + tmp.file("c.lmq") +
                             corpus);
  EXPECT_NE(r.err.find("disagree"), std::string::npos) << r.err;
}
