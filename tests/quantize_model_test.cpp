// The model plan: targets, granularity, folded vs expanded realisations, OCS function
// preservation, accounting, and option validation.
#include "corpus/corpus_store.h"
#include "corpus/corpus.h"
#include "lm/evaluate.h"
#include "lm/model_io.h"
#include "quant/quantize_model.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

struct Fixture {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LstmLm model{nullptr};
  explicit Fixture(bool tied = false) {
    torch::manual_seed(21);
    LstmLmConfig c;
    c.vocab = corpus.vocab.size();
    c.emb = c.hidden = 16;
    c.tied = tied;
    model = LstmLm(c);
    torch::NoGradGuard g;
    model->w_hh[0][5][3] = 3.0;    // outliers for OCS to find
    model->encoder[2][7] = -1.5;
  }
  double ppl(LstmLm& m) { return evaluate(m, corpus.train, {4, 6, {}}).perplexity; }
};

QuantConfig ocs(int bits, double r, bool grid = false) {
  QuantConfig q;
  q.method = Method::kOcs;
  q.bits = bits;
  q.expand_ratio = r;
  q.grid_aware = grid;
  q.build_expanded = true;
  return q;
}

}  // namespace

TEST(QuantizeModel, SixteenBitsIsAlmostFloatAndTwoBitsIsNot) {
  Fixture f;
  const double fl = f.ppl(f.model);
  QuantConfig q;
  q.bits = 16;
  auto m16 = quantize_model(f.model, q);
  EXPECT_NEAR(f.ppl(m16.folded), fl, 1e-3 * fl);
  q.bits = 2;
  auto m2 = quantize_model(f.model, q);
  EXPECT_GT(std::abs(f.ppl(m2.folded) - fl), 1e-3 * fl);
  EXPECT_EQ(m2.matrices.size(), 6u);  // embedding, decoder, input/recurrent x 2 layers
}

TEST(QuantizeModel, TargetsLeaveOtherMatricesUntouched) {
  Fixture f;
  QuantConfig q;
  q.bits = 3;
  q.targets = parse_targets("recurrent");
  auto m = quantize_model(f.model, q);
  ASSERT_EQ(m.matrices.size(), 2u);
  EXPECT_EQ(m.matrices[0].name, "recurrent.l0");
  EXPECT_TRUE(torch::equal(m.folded->encoder, f.model->encoder));
  EXPECT_TRUE(torch::equal(m.folded->w_ih[1], f.model->w_ih[1]));
  EXPECT_FALSE(torch::equal(m.folded->w_hh[1], f.model->w_hh[1]));
  // At most 2^3 - 1 = 7 distinct values in a per-tensor quantized matrix.
  EXPECT_LE(std::get<0>(at::_unique(m.folded->w_hh[0])).numel(), 7);
}

TEST(QuantizeModel, GranularityGroups) {
  Fixture f;
  QuantConfig q;
  q.bits = 4;
  q.targets = parse_targets("recurrent,decoder");
  for (auto [g, rec, dec] : {std::tuple{"tensor", 1, 1}, {"gate", 4, 1}, {"row", 64, 75}}) {
    q.granularity = parse_granularity(g);
    auto m = quantize_model(f.model, q);
    EXPECT_EQ(m.matrices[0].name, "decoder");
    EXPECT_EQ(m.matrices[0].groups, dec) << g;
    EXPECT_EQ(m.matrices[1].groups, rec) << g;
  }
}

TEST(QuantizeModel, OcsTransformedModelEqualsFloat) {
  Fixture f;
  const double fl = f.ppl(f.model);
  for (bool grid : {false, true}) {
    auto m = quantize_model(f.model, ocs(4, 0.1, grid));
    ASSERT_TRUE(m.transformed);
    EXPECT_NEAR(f.ppl(m.transformed), fl, 1e-5 * fl) << "grid " << grid;
    for (const auto& r : m.matrices) {
      EXPECT_EQ(r.split_channels, 2) << r.name;  // ceil(0.1 * 16)
      EXPECT_LE(r.max_abs_after, r.max_abs_before) << r.name;
    }
  }
}

TEST(QuantizeModel, OcsExpandedEqualsFolded) {
  for (bool tied : {false, true}) {
    Fixture f(tied);
    for (bool grid : {false, true}) {
      auto m = quantize_model(f.model, ocs(5, 0.2, grid));
      const double folded = f.ppl(m.folded), expanded = f.ppl(m.expanded);
      EXPECT_NEAR(expanded, folded, 1e-4 * folded) << "tied " << tied << " grid " << grid;
    }
  }
}

TEST(QuantizeModel, OcsShrinksTheOutlierAndCountsOverhead) {
  Fixture f;
  auto q = ocs(4, 0.1);
  q.targets = parse_targets("recurrent");
  auto m = quantize_model(f.model, q);
  const auto& r = m.matrices[0];
  EXPECT_FLOAT_EQ(r.max_abs_before, 3.0);
  EXPECT_LT(r.max_abs_after, 3.0);
  EXPECT_EQ(r.params_after - r.params_before, 64 * 2);
  EXPECT_EQ(r.macs_after - r.macs_before, 64 * 2);
  EXPECT_EQ(m.macs_after - m.macs_before, 2 * 64 * 2);
  // OCS lowers the quantization error of the outlier matrix at 4 bits, per tensor.
  QuantConfig clip;
  clip.bits = 4;
  clip.targets = q.targets;
  auto c = quantize_model(f.model, clip);
  EXPECT_LT(m.matrices[0].mse, c.matrices[0].mse);
}

TEST(QuantizeModel, ConfigValidation) {
  QuantConfig q;
  q.bits = 1;
  EXPECT_THROW_MESSAGE(q.validate(), std::invalid_argument, "bits must be in 2..16");
  q.bits = 4;
  q.expand_ratio = 0.1;
  EXPECT_THROW_MESSAGE(q.validate(), std::invalid_argument, "apply to the ocs method only");
  q.method = Method::kOcs;
  q.expand_ratio = 2;
  EXPECT_THROW_MESSAGE(q.validate(), std::invalid_argument, "[0, 1]");
  EXPECT_THROW_MESSAGE(parse_targets("bias"), std::invalid_argument,
                       "valid values: all, embedding, input, recurrent, decoder");
  EXPECT_THROW_MESSAGE(parse_granularity("channel"), std::invalid_argument, "tensor, row, gate");
  EXPECT_THROW_MESSAGE(parse_method("gptq"), std::invalid_argument, "float, clip, ocs");
}

TEST(RealData, EightBitMaxIsWithinHalfAPercentOfFloat) {
  LMQUANT_REQUIRE_REAL_DATA(dir);
  const std::string model_dir = lmquant::test::reference_model_dir("wt2-lstm200");
  if (model_dir.empty()) GTEST_SKIP() << "reference model wt2-lstm200 not found";
  CorpusOptions o;
  o.data_dir = dir;
  Corpus c = load_word_corpus(locate_corpus("wikitext2", o));
  LoadedModel l = load_model(model_dir + "/model.pt");
  // The first 50k test tokens keep the test short; the full split is in the closing notes.
  auto part = c.test.narrow(0, 0, 50000);
  const double fl = evaluate(l.model, part).perplexity;
  QuantConfig q;
  q.bits = 8;
  auto m = quantize_model(l.model, q);
  const double p8 = evaluate(m.folded, part).perplexity;
  EXPECT_LT(p8, fl * 1.005);
  // OCS at r = 0.02 on the real model: folded and expanded agree, unrounded equals float.
  auto o2 = ocs(6, 0.02, true);
  o2.targets = parse_targets("recurrent,decoder");
  auto mo = quantize_model(l.model, o2);
  auto small = c.test.narrow(0, 0, 8000);
  const double flo = evaluate(l.model, small).perplexity;
  EXPECT_NEAR(evaluate(mo.transformed, small).perplexity, flo, 1e-5 * flo);
  const double fo = evaluate(mo.folded, small).perplexity;
  EXPECT_NEAR(evaluate(mo.expanded, small).perplexity, fo, 1e-4 * fo);
}
