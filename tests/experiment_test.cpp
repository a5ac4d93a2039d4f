// The experiment layer (src/experiment): one record per configuration on one stream, rounding
// spread, the sweep's grid, and the README's numbers reproduced through it.
#include "experiment/experiment.h"

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "experiment/sweep.h"
#include "test_utils.h"

using namespace lmquant;

namespace {
// WikiText-2 and wt2-lstm200, or the reason they are missing (the test then skips).
struct Reference {
  Corpus corpus;
  LoadedModel model;
  std::string missing;
};
Reference load_reference() {
  Reference r;
  const std::string dir = lmquant::test::real_data_dir();
  const std::string model_dir = lmquant::test::reference_model_dir("wt2-lstm200");
  if (dir.empty())
    r.missing =
        "real WikiText-2 not available: set LMQUANT_DATA (.ci/run sets it to ../shared/data)";
  else if (model_dir.empty())
    r.missing = "reference model wt2-lstm200 not found";
  if (!r.missing.empty()) return r;
  CorpusOptions o;
  o.data_dir = dir;
  r.corpus = load_word_corpus(locate_corpus("wikitext2", o));
  r.model = load_model(model_dir + "/model.pt");
  return r;
}

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
  const Reference ref = load_reference();
  if (!ref.missing.empty()) GTEST_SKIP() << ref.missing;
  const Corpus& c = ref.corpus;
  const LoadedModel& l = ref.model;
  EvalContext ctx(l, c, Split::kTest);
  ctx.set_divergence(false);  // perplexities only (the KL has its own test below)
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

TEST(RealData, SelectionSliceChoosesAsTheFullValidSplitDoes) {
  // The main job selects on the first 50,000 valid tokens to save time (experiment/main_job.h).
  // On wt2-lstm200 at 4 bits the slice must pick what the whole valid split picks, among the
  // leaders of the main job's families (per-row clipping, the best per-tensor rule, OCS per row
  // and per tensor): each candidate is evaluated on both streams and the two argmins compared.
  const Reference ref = load_reference();
  if (!ref.missing.empty()) GTEST_SKIP() << ref.missing;
  const Corpus& c = ref.corpus;
  const LoadedModel& l = ref.model;
  EvalContext slice(l, c, Split::kValid, 50000), full(l, c, Split::kValid);
  slice.set_divergence(false);  // choices are made by perplexity
  full.set_divergence(false);
  std::vector<QuantConfig> candidates;
  for (const char* rule : {"max", "mse"}) {
    QuantConfig q;
    q.clip = ClipRule::parse(rule);
    q.granularity = Granularity::kRow;
    candidates.push_back(q);
  }
  QuantConfig pt;
  pt.clip = ClipRule::parse("percentile:99.99");
  candidates.push_back(pt);
  QuantConfig ocs_row = candidates[0];
  ocs_row.method = Method::kOcs;
  ocs_row.expand_ratio = 0.02;
  candidates.push_back(ocs_row);
  QuantConfig ocs_tensor = pt;
  ocs_tensor.method = Method::kOcs;
  ocs_tensor.expand_ratio = 0.05;
  candidates.push_back(ocs_tensor);
  size_t best_slice = 0, best_full = 0;
  std::vector<double> ps, pf;
  for (const auto& q : candidates) {
    ps.push_back(slice.run(q).perplexity());
    pf.push_back(full.run(q).perplexity());
    if (ps.back() < ps[best_slice]) best_slice = ps.size() - 1;
    if (pf.back() < pf[best_full]) best_full = pf.size() - 1;
  }
  std::string table;
  for (size_t i = 0; i < candidates.size(); ++i)
    table += candidates[i].label() + ": slice " + std::to_string(ps[i]) + ", full " +
             std::to_string(pf[i]) + "\n";
  EXPECT_EQ(candidates[best_slice].label(), candidates[best_full].label()) << table;
  std::printf("%s", table.c_str());
}

TEST(RealData, KlToFloatFollowsTheBitWidthAndLeavesThePerplexityAlone) {
  // Mean KL(p_float ‖ p_quant) and top-1 agreement on the first 35,000 valid tokens of
  // wt2-lstm200: fewer bits diverge more; the NLL of the paired (blocked) pass is the plain
  // evaluation's to float rounding.
  const Reference ref = load_reference();
  if (!ref.missing.empty()) GTEST_SKIP() << ref.missing;
  EvalContext ctx(ref.model, ref.corpus, Split::kValid, 35000);
  QuantConfig q4;
  q4.clip = ClipRule::parse("mse");
  q4.granularity = Granularity::kRow;
  QuantConfig q3 = q4;
  q3.bits = 3;
  const Record r4 = ctx.run(q4), r3 = ctx.run(q3);
  for (const Record* r : {&r4, &r3}) {
    ASSERT_TRUE(r->has_divergence());
    EXPECT_GT(r->kl_to_float.mean, 0);
    EXPECT_GT(r->kl_to_float.resamples, 0);
    EXPECT_LT(r->kl_to_float.ci_low, r->kl_to_float.mean);
    EXPECT_GT(r->kl_to_float.ci_high, r->kl_to_float.mean);
    EXPECT_GT(r->top1_agreement.mean, 0.5);
    EXPECT_LT(r->top1_agreement.mean, 1.0);
    // The float model's own NLL from the paired pass is the float evaluation's.
    EXPECT_NEAR(r->eval.reference_nll, ctx.float_eval().total_nll,
                1e-6 * ctx.float_eval().total_nll);
  }
  EXPECT_GT(r3.kl_to_float.ci_low, r4.kl_to_float.ci_high);
  EXPECT_LT(r3.top1_agreement.mean, r4.top1_agreement.mean);
  ctx.set_divergence(false);
  const Record plain = ctx.run(q4);
  EXPECT_FALSE(plain.has_divergence());
  EXPECT_NEAR(plain.eval.total_nll, r4.eval.total_nll, 1e-7 * plain.eval.total_nll);
  std::printf("KL to float on valid[:35k]: 4b %.5f [%.5f, %.5f] top-1 %.4f; 3b %.5f top-1 %.4f\n",
              r4.kl_to_float.mean, r4.kl_to_float.ci_low, r4.kl_to_float.ci_high,
              r4.top1_agreement.mean, r3.kl_to_float.mean, r3.top1_agreement.mean);
}
