// The plan (quant/matrix_plan.h): each matrix's objective, widths and the settings that did not
// apply to it; the applied configuration; and a quantization's record saying what ran.
#include "quant/matrix_plan.h"

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "quant/quantize_model.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

LstmLmConfig model_config(bool tied) {
  LstmLmConfig c;
  c.vocab = 50, c.emb = c.hidden = 16, c.tied = tied;
  return c;
}

QuantConfig round_four() {
  QuantConfig q;
  q.rounding = Rounding::kGptq;
  q.bits = 5;
  q.granularity = Granularity::kRow;
  q.grid = Grid::kMidrise;
  q.row_widths = {1, 2, 3, 4, 7};
  q.row_budget = 2.2;
  q.rotate = true;
  q.fisher_decoder = true;
  q.gptq_embedding = true;
  return q;
}

const MatrixPlan& plan_of(const std::vector<MatrixPlan>& plans, const std::string& name) {
  for (const auto& p : plans)
    if (p.matrix.name == name) return p;
  throw std::runtime_error("no plan for " + name);
}

}  // namespace

TEST(MatrixPlan, UntiedModelGetsEveryObjectiveAsked) {
  const QuantConfig q = round_four();
  const auto plans = plan_matrices(model_config(false), q);
  ASSERT_EQ(plans.size(), 6u);
  EXPECT_EQ(plan_of(plans, "embedding").objective, Objective::kFeed);
  EXPECT_EQ(plan_of(plans, "embedding").sensitivity, "feed");
  EXPECT_EQ(plan_of(plans, "decoder").objective, Objective::kFisher);
  EXPECT_EQ(plan_of(plans, "decoder").sensitivity, "fisher");
  EXPECT_EQ(plan_of(plans, "decoder").widths(q), "rows{1,2,3,4,7}@2.2");
  EXPECT_EQ(plan_of(plans, "input.l1").objective, Objective::kInputs);
  EXPECT_EQ(plan_of(plans, "input.l1").widths(q), "5");
  for (const auto& p : plans) {
    EXPECT_TRUE(p.not_applied.empty()) << p.matrix.name;
    EXPECT_TRUE(p.rotated);
    EXPECT_EQ(p.rounding(), Rounding::kGptq);
  }
  EXPECT_EQ(applied_config(q, plans), q);
}

TEST(MatrixPlan, TiedModelGetsTheTiedObjective) {
  const QuantConfig q = round_four();
  const auto plans = plan_matrices(model_config(true), q);
  const auto& tied = plan_of(plans, "embedding+decoder");
  EXPECT_EQ(tied.objective, Objective::kTied);
  EXPECT_EQ(tied.rounding(), Rounding::kGptq);
  EXPECT_EQ(tied.sensitivity, "tied");
  EXPECT_TRUE(tied.not_applied.empty());
  EXPECT_EQ(applied_config(q, plans), q);  // both flags ran, through the tied objective
}

TEST(MatrixPlan, TiedModelSaysWhatDidNotApplyAndTheLabelDoesNotClaimIt) {
  QuantConfig q = round_four();
  q.fisher_decoder = q.gptq_embedding = false;
  q.gptq_decoder = true;  // the logits' Hessian has no meaning for a row that is also a lookup
  q.row_sensitivity = RowSensitivity::kFrequency;
  const auto plans = plan_matrices(model_config(true), q);
  const auto& tied = plan_of(plans, "embedding+decoder");
  EXPECT_EQ(tied.objective, Objective::kWeight);
  EXPECT_EQ(tied.sensitivity, "frequency");
  std::string notes;
  for (const auto& n : tied.not_applied) notes += n + "\n";
  EXPECT_NE(notes.find("gptq_decoder: the tied matrix"), std::string::npos) << notes;
  EXPECT_NE(notes.find("rounding gptq: the tied matrix is rounded to nearest"), std::string::npos)
      << notes;
  const QuantConfig a = applied_config(q, plans);
  EXPECT_FALSE(a.gptq_decoder);
  EXPECT_EQ(a.rounding, Rounding::kGptq);  // W_ih, W_hh were compensated
  EXPECT_NE(q.label().find("+decoder"), std::string::npos);
  EXPECT_EQ(a.label().find("+decoder"), std::string::npos) << a.label();
  // The tied objective needs unwidened inputs: not with OCS.
  QuantConfig o;
  o.method = Method::kOcs, o.expand_ratio = 0.05, o.rounding = Rounding::kGptq;
  o.gptq_embedding = true;
  const auto op = plan_matrices(model_config(true), o);
  EXPECT_EQ(plan_of(op, "embedding+decoder").objective, Objective::kWeight);
  EXPECT_FALSE(applied_config(o, op).gptq_embedding);
}

TEST(MatrixPlan, GptqOnMatricesWithoutInputsIsNotClaimed) {
  QuantConfig q;
  q.rounding = Rounding::kGptq;
  q.targets = parse_targets("embedding,decoder");
  const auto plans = plan_matrices(model_config(false), q);
  for (const auto& p : plans) {
    EXPECT_EQ(p.objective, Objective::kWeight);
    ASSERT_EQ(p.not_applied.size(), 1u);
    EXPECT_EQ(p.not_applied[0].rfind("rounding gptq:", 0), 0u) << p.not_applied[0];
  }
  const QuantConfig a = applied_config(q, plans);
  EXPECT_EQ(a.rounding, Rounding::kNearest);
  EXPECT_EQ(a.label(), "max 4b tensor");
}

TEST(MatrixPlan, PerMatrixSettingsNameTheModelsMatrices) {
  QuantConfig q;
  q.matrix_bits["input.l2"] = 3;  // a 2-layer model has no layer 2
  EXPECT_THROW_MESSAGE(plan_matrices(model_config(false), q), std::invalid_argument,
                       "no matrix named 'input.l2'");
  q.matrix_bits = {{"embedding", 3}};
  EXPECT_NO_THROW(plan_matrices(model_config(false), q));
}

TEST(MatrixPlan, TiedQuantizationRecordsThePlanItRan) {
  const Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  const LstmLm model = lmquant::test::tiny_lstm(corpus.vocab.size(), 5, /*tied=*/true);
  QuantConfig q = round_four();
  q.calib_sequences = 4;
  CalibrationOptions co;
  co.sequences = 4;
  const Calibration cal = make_calibration(corpus.train, co);
  const QuantizedModel qm = quantize_model(model, q, &cal);
  EXPECT_EQ(qm.asked, q);
  EXPECT_EQ(qm.config, q);
  ASSERT_EQ(qm.matrices.front().name, "embedding+decoder");
  const MatrixReport& r = qm.matrices.front();
  EXPECT_EQ(r.objective, "tied");
  EXPECT_EQ(r.rounding, "gptq");
  EXPECT_EQ(r.widths, "rows{1,2,3,4,7}@2.2");
  EXPECT_TRUE(r.rotated);
  EXPECT_TRUE(r.not_applied.empty());
  for (const auto& m : qm.matrices)
    if (m.name != "embedding+decoder") EXPECT_EQ(m.objective, "inputs") << m.name;
  // The plan survives the record's JSON.
  const MatrixReport back = MatrixReport::from_json(r.to_json());
  EXPECT_EQ(back.objective, "tied");
  EXPECT_EQ(back.sensitivity, "tied");
}
