// The experiment layer (src/experiment): one record per configuration on one stream, rounding
// spread, the sweep's grid, and the README's numbers reproduced through it.
#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "experiment/experiment.h"
#include "experiment/sweep.h"
#include "test_utils.h"

using namespace lmquant;

namespace {
LoadedModel tiny_model(const Corpus& corpus) {
  torch::manual_seed(5);
  LstmLmConfig c;
  c.vocab = corpus.vocab.size();
  c.emb = c.hidden = 12;
  LoadedModel l;
  l.model = LstmLm(c);
  l.model->eval();
  l.path = "tiny";
  l.file_sha256 = "0123";
  return l;
}
}  // namespace

TEST(Experiment, RecordsOfOneStreamAndRoundingSpread) {
  const Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  const LoadedModel l = tiny_model(corpus);
  EvalContext ctx(l, corpus, Split::kTrain);
  const Record f = ctx.float_record();
  EXPECT_TRUE(f.is_float());
  EXPECT_EQ(f.perplexity(), f.float_perplexity);
  EXPECT_EQ(f.source.split, "train");
  EXPECT_EQ(f.source.split_sha256.size(), 64u);
  QuantConfig q;
  q.bits = 3;
  q.granularity = Granularity::kRow;
  const Record r = ctx.run(q, /*repeats=*/3);
  EXPECT_EQ(r.float_perplexity, f.perplexity());
  EXPECT_EQ(r.eval.chunk_nll.size(), f.eval.chunk_nll.size());
  EXPECT_NEAR(r.vs_float.delta_pct, 100 * (r.perplexity() / f.perplexity() - 1), 1e-9);
  ASSERT_EQ(r.repeat_perplexities.size(), 3u);
  // Jittered α: other roundings, deterministic (the same call gives the same spread).
  EXPECT_NE(r.repeat_perplexities[0], r.perplexity());
  EXPECT_NE(r.repeat_perplexities[0], r.repeat_perplexities[1]);
  EXPECT_EQ(ctx.run(q, 3).repeat_perplexities, r.repeat_perplexities);
  EXPECT_GT(r.spread().std, 0);
}

TEST(Experiment, SweepGridCells) {
  SweepGrid g;
  g.bits = {4, 8};
  g.methods = {Method::kClip, Method::kOcs};
  g.clips = {ClipRule::parse("max")};
  g.expand_ratios = {0.01, 0.1};
  g.grid_aware = {false, true};
  EXPECT_EQ(g.cells().size(), 2u * (1 + 2 * 2));
  g.bits = {1};
  EXPECT_THROW_MESSAGE(g.cells(), std::invalid_argument, "bits must be in 2..16, got 1");
}

TEST(RealData, ReadmeTableCellsReproduceThroughTheExperimentLayer) {
  // Two cells of the README's quantizer table (wt2-lstm200, full test split), to the printed
  // digits: max per tensor at 4 bits 211.57, mse per row at 3 bits 175.93; float 163.75.
  LMQUANT_REQUIRE_REAL_DATA(dir);
  const std::string model_dir = lmquant::test::reference_model_dir("wt2-lstm200");
  if (model_dir.empty()) GTEST_SKIP() << "reference model wt2-lstm200 not found";
  CorpusOptions o;
  o.data_dir = dir;
  const Corpus c = load_word_corpus(locate_corpus("wikitext2", o));
  const LoadedModel l = load_model(model_dir + "/model.pt");
  EvalContext ctx(l, c, Split::kTest);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", ctx.float_eval().perplexity);
  EXPECT_STREQ(buf, "163.75");
  QuantConfig a;
  a.bits = 4;
  const Record ra = ctx.run(a);
  std::snprintf(buf, sizeof buf, "%.2f", ra.perplexity());
  EXPECT_STREQ(buf, "211.57");
  // Its loss is far outside the token interval: 700 chunks, significant.
  EXPECT_EQ(ra.eval.chunk_nll.size(), 702u);
  EXPECT_TRUE(ra.vs_float.significant());
  EXPECT_LT(ra.vs_float.ci_low, ra.vs_float.delta_pct);
  EXPECT_GT(ra.vs_float.ci_high, ra.vs_float.delta_pct);
  QuantConfig b;
  b.bits = 3;
  b.clip = ClipRule::parse("mse");
  b.granularity = Granularity::kRow;
  std::snprintf(buf, sizeof buf, "%.2f", ctx.run(b).perplexity());
  EXPECT_STREQ(buf, "175.93");
}
