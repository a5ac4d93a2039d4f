// Row α factors (quant/row_alpha.h): the header's worked example through quantize_rows, the
// merge rule, the round-four recipe on a tiny model (every row's chosen cost at most the clip
// rule's, factors {1} the same model as none), and the configuration's JSON, label and refusals.
#include "quant/row_alpha.h"

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "quant/calibration.h"
#include "quant/matrix_plan.h"
#include "quant/quantize_model.h"
#include "quant/row_width_rounding.h"
#include "quant/row_widths.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

// The header's example: rows of 4 priced by frequency, width 2 (midrise), clip max.
QuantConfig example_config(std::vector<double> factors) {
  QuantConfig q;
  q.bits = 4;
  q.clip = ClipRule::parse("max");
  q.granularity = Granularity::kRow;
  q.grid = Grid::kMidrise;
  q.row_widths = {2, 3};
  q.row_budget = 2;  // every row at 2 bits
  q.row_sensitivity = RowSensitivity::kFrequency;
  q.row_alpha_factors = std::move(factors);
  return q;
}

struct Tiny {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LstmLm model = nullptr;
  Calibration cal;
  explicit Tiny(bool tied = false) {
    model = lmquant::test::tiny_lstm(corpus.vocab.size(), 9, tied);
    CalibrationOptions o;
    o.sequences = 32, o.length = 5, o.warmup = 3;
    cal = make_calibration(corpus.train, o);
  }
};

// The round-four recipe (gptq, mse, rows 0..4 and 7, midrise, rotated, the decoder's Fisher, the
// embedding against W_ih) at 2.5 bits per row.
QuantConfig recipe(std::vector<double> factors) {
  QuantConfig q;
  q.bits = 5;
  q.clip = ClipRule::parse("mse");
  q.granularity = Granularity::kRow;
  q.grid = Grid::kMidrise;
  q.half_scales = true;
  q.rotate = true;
  q.rounding = Rounding::kGptq;
  q.calib_sequences = 32;
  q.fisher_decoder = true;
  q.gptq_embedding = true;
  q.row_widths = {0, 1, 2, 3, 4, 7};
  q.row_budget = 2.5;
  q.row_alpha_factors = std::move(factors);
  return q;
}

}  // namespace

TEST(RowAlpha, WorkedExampleOfTheHeader) {
  LstmLmConfig mc;
  mc.vocab = 2, mc.emb = 4, mc.hidden = 4, mc.layers = 1;
  const QuantConfig q = example_config({0.85, 1.0});
  q.validate();
  const auto plans = plan_matrices(mc, q);
  const MatrixPlan* dec = nullptr;
  for (const auto& p : plans)
    if (p.matrix.name == "decoder") dec = &p;
  ASSERT_NE(dec, nullptr);
  ASSERT_TRUE(dec->row_alpha);
  ASSERT_EQ(dec->sensitivity, "frequency");
  const auto w =
      torch::tensor({1.0f, 0.1f, -0.1f, 0.2f, 1.0f, -1.0f, 1.0f / 3, -1.0f / 3}).view({2, 4});
  RowData data;
  data.freq = torch::tensor({0.5, 0.5}, torch::kDouble);
  const MatrixResult r = quantize_rows(*dec, w, q, data, {}, nullptr);
  EXPECT_EQ(r.q.row_bits[0].item<int>(), 2);
  EXPECT_EQ(r.q.row_bits[1].item<int>(), 2);
  EXPECT_NEAR(r.q.step[0][0].item<float>(), 0.85f / 3, 1e-6);  // c = 0.85
  EXPECT_NEAR(r.q.step[1][0].item<float>(), 1.0f / 3, 1e-6);   // c = 1
  const auto expected =
      torch::tensor({0.85f, 0.85f / 3, -0.85f / 3, 0.85f / 3, 1.0f, -1.0f, 1.0f / 3, -1.0f / 3})
          .view({2, 4});
  EXPECT_TRUE(torch::allclose(r.folded, expected, 1e-6, 1e-6));
  EXPECT_NEAR((w[0] - r.folded[0]).pow(2).sum().item<double>(), 0.0967, 5e-5);
  EXPECT_EQ(r.report.rows_at_alpha_factor, (std::map<std::string, int64_t>{{"0.85", 1}, {"1", 1}}));
  // The clip rule alone (factor 1 only): row 0 keeps s = 1/3 and its larger error 0.1267.
  const MatrixResult one = quantize_rows(*dec, w, example_config({1.0}), data, {}, nullptr);
  EXPECT_NEAR((w[0] - one.folded[0]).pow(2).sum().item<double>(), 0.1267, 5e-5);
}

TEST(RowAlpha, KeepCheaperRowsTakesLowerCostsAndKeepsTies) {
  LstmLmConfig mc;
  mc.vocab = 3, mc.emb = 2, mc.hidden = 2, mc.layers = 1;
  const NamedMatrix m = find_matrix(mc, "decoder");
  QuantConfig q = example_config({});
  q.matrix_bits["decoder"] = 2;
  const auto w = torch::tensor({1.0f, 0.5f, -0.3f, 0.2f, 0.7f, -0.9f}).view({3, 2});
  auto make = [&](double f, std::vector<double> cost) {
    RowCandidates c;
    c.parts.push_back(prepare_matrix(m, w, q, f));
    c.codes.push_back(torch::full({3, 2}, static_cast<int>(f * 10), torch::kShort));
    c.cost = torch::tensor(cost, torch::kDouble).view({1, 3});
    c.factor = torch::full({1, 3}, f, torch::kDouble);
    return c;
  };
  RowCandidates best = make(1.0, {1.0, 2.0, 3.0});
  keep_cheaper_rows(best, make(0.5, {0.5, 2.0, 4.0}));
  EXPECT_TRUE(torch::equal(best.factor[0], torch::tensor({0.5, 1.0, 1.0}, torch::kDouble)));
  EXPECT_TRUE(torch::equal(best.cost[0], torch::tensor({0.5, 2.0, 3.0}, torch::kDouble)));
  EXPECT_EQ(best.codes[0][0][0].item<int>(), 5);
  EXPECT_EQ(best.codes[0][1][0].item<int>(), 10);
  const Prepared half = prepare_matrix(m, w, q, 0.5), whole = prepare_matrix(m, w, q, 1.0);
  EXPECT_TRUE(torch::equal(best.parts[0].q.step[0], half.q.step[0]));
  EXPECT_TRUE(torch::equal(best.parts[0].q.step[1], whole.q.step[1]));
  EXPECT_EQ(best.parts[0].alpha[0], half.alpha[0]);
  EXPECT_EQ(best.parts[0].alpha[2], whole.alpha[2]);
  EXPECT_EQ(rows_at_factor(best.factor, {2}, {2, 2, 0}),
            (std::map<std::string, int64_t>{{"0.5", 1}, {"1", 1}}));
}

TEST(RowAlpha, RecipeRowsCostNoMoreThanTheClipRulesAndFactorOneIsTheRecipe) {
  for (bool tied : {false, true}) {
    Tiny t(tied);
    const QuantizedModel plain = quantize_model(t.model, recipe({}), &t.cal);
    const QuantizedModel one = quantize_model(t.model, recipe({1.0}), &t.cal);
    // The factor 1 alone is the clip rule's α: the same model, the record saying what ran.
    for (size_t i = 0; i < plain.tensors.size(); ++i) {
      EXPECT_TRUE(torch::equal(plain.tensors[i].codes, one.tensors[i].codes)) << tied;
      EXPECT_TRUE(torch::equal(plain.tensors[i].step, one.tensors[i].step)) << tied;
    }
    EXPECT_NE(one.config.label().find("α-rows{1}"), std::string::npos) << one.config.label();
    const QuantizedModel searched = quantize_model(t.model, recipe({0.7, 0.85, 1.0, 1.15}), &t.cal);
    EXPECT_EQ(searched.config.row_alpha_factors, (std::vector<double>{0.7, 0.85, 1.0, 1.15}));
    for (const auto& r : searched.matrices) {
      if (r.rows_at_bits.empty()) {
        EXPECT_TRUE(r.rows_at_alpha_factor.empty()) << r.name;
        continue;
      }
      int64_t counted = 0;
      for (const auto& [f, n] : r.rows_at_alpha_factor) counted += n;
      const auto zero = r.rows_at_bits.count(0) ? r.rows_at_bits.at(0) : 0;
      EXPECT_EQ(counted, r.rows - zero) << r.name;
      EXPECT_EQ(MatrixReport::from_json(r.to_json()).rows_at_alpha_factor, r.rows_at_alpha_factor);
    }
  }
  // The search's own promise, on the decoder's Fisher with its rows at one width (budget at the
  // narrowest quantized width, so every row is priced where it is kept): each row's cost with
  // the factors is at most its cost with the clip rule's α.
  Tiny t;
  const auto mc = t.model->config();
  QuantConfig q = recipe({0.7, 0.85, 1.0, 1.15});
  q.row_widths = {2, 3}, q.row_budget = 2;
  const auto plans = plan_matrices(mc, q);
  const MatrixPlan* found = nullptr;
  for (const auto& p : plans)
    if (p.matrix.name == "decoder") found = &p;
  ASSERT_NE(found, nullptr);
  const MatrixPlan& dec = *found;
  RowData data;
  data.decoder_h = calibration_inputs(*t.model, t.cal, {"decoder"}).at("decoder");
  data.decoder_bias = t.model->decoder_bias.detach();
  const auto& w = t.model->decoder_weight;
  const DecoderFisher fisher(data.decoder_h, w, data.decoder_bias);
  const auto searched = quantize_rows(dec, w, q, data, {}, &fisher);
  QuantConfig q1 = q;
  q1.row_alpha_factors = {1.0};
  const auto clip_rule = quantize_rows(dec, w, q1, data, {}, &fisher);
  const auto wf = w.detach();
  const auto cost = fisher_sensitivity({wf - searched.folded, wf - clip_rule.folded},
                                       data.decoder_h, wf, data.decoder_bias);
  EXPECT_TRUE((cost[0] <= cost[1] * (1 + 1e-9) + 1e-15).all().item<bool>());
  EXPECT_LT(cost[0].sum().item<double>(), cost[1].sum().item<double>());
  EXPECT_GT(searched.report.rows_at_alpha_factor.size(), 1u);  // not one factor for every row
}

TEST(RowAlpha, ConfigurationJsonLabelAndRefusals) {
  QuantConfig q = recipe({0.8, 0.9, 1.0, 1.1});
  q.validate();
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  EXPECT_NE(q.label().find(" α-rows{0.8,0.9,1,1.1}"), std::string::npos) << q.label();
  EXPECT_NE(q.family().find("α-rows"), std::string::npos);
  QuantConfig bad = q;
  bad.row_alpha_factors = {0.9, 0.9};
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "distinct positive");
  bad.row_alpha_factors = {-1};
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "distinct positive");
  bad = q;
  bad.row_widths.clear(), bad.row_budget = 0;
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "need row widths");
  // A vocabulary matrix without row widths says the factors did not apply to it; with no matrix
  // taking them the applied configuration drops them.
  LstmLmConfig mc;
  mc.vocab = 10, mc.emb = 4, mc.hidden = 4, mc.layers = 1;
  QuantConfig some = q;
  some.matrix_bits["embedding"] = 4;
  const auto plans = plan_matrices(mc, some);
  EXPECT_FALSE(plans.front().row_alpha);
  bool said = false;
  for (const auto& n : plans.front().not_applied)
    said = said || n.find("row_alpha_factors") != std::string::npos;
  EXPECT_TRUE(said);
  EXPECT_EQ(applied_config(some, plans).row_alpha_factors, q.row_alpha_factors);
  QuantConfig none = some;
  none.targets = {Target::kInput, Target::kRecurrent, Target::kEmbedding};
  EXPECT_TRUE(applied_config(none, plan_matrices(mc, none)).row_alpha_factors.empty());
}
