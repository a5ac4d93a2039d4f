// The joint mixed-precision solver (src/experiment/joint_allocation.h): the header's worked
// example step by step, a granularity that pays for its scales, the search ending at a local
// minimum that meets the size exactly, its refusals, and a run on a tiny model whose reported
// loss is the loss of the configuration it returns.
#include "experiment/joint_allocation.h"

#include <cmath>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "lm/matrices.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

QuantConfig synthetic_start() {
  QuantConfig c;
  c.bits = 4;
  c.granularity = Granularity::kRow;
  c.grid = Grid::kMidrise;  // widths 1..7
  c.row_widths = {1, 2, 3, 4, 5, 6, 7};
  c.row_budget = 2.5;
  return c;
}

// The header's problem: a plain matrix "input.l0" of 100 weights, an embedding and a decoder of
// 1,000 weights each, L = 2^-b + 0.1 · 2^-r_e + 0.3 · 2^-r_d, size 100 b + 1000 (r_e + r_d).
// With `group_pays`, input.l0 at group:64 halves its term and costs 40 bits of scales.
JointProblem synthetic(bool group_pays = false) {
  JointProblem p;
  p.start = synthetic_start();
  p.plain = {"input.l0"};
  p.rows = {"embedding", "decoder"};
  p.size_bits = 5400;
  p.size = [group_pays](const QuantConfig& c) {
    const bool group = c.granularity_for("input.l0").kind == Granularity::Kind::kGroup;
    return 100.0 * c.bits_for("input.l0") + (group_pays && group ? 40.0 : 0.0) +
           1000.0 * (c.row_budget_for("embedding") + c.row_budget_for("decoder"));
  };
  p.loss = [](const QuantConfig& c) {
    const bool group = c.granularity_for("input.l0").kind == Granularity::Kind::kGroup;
    return std::pow(2.0, -c.bits_for("input.l0")) * (group ? 0.5 : 1.0) +
           0.1 * std::pow(2.0, -c.row_budget_for("embedding")) +
           0.3 * std::pow(2.0, -c.row_budget_for("decoder"));
  };
  return p;
}

std::vector<JointStep> accepted(const JointResult& r) {
  std::vector<JointStep> out;
  for (const auto& s : r.steps)
    if (s.accepted && s.round > 0) out.push_back(s);
  return out;
}

}  // namespace

TEST(JointAllocation, TheHeadersWorkedExample) {
  JointOptions o;
  o.split_step = 0.5;
  o.min_gain = 0;
  const JointResult r = refine_jointly(synthetic(), o);
  EXPECT_NEAR(r.start_loss, 0.13321, 5e-6);
  // Round 1: every neighbour measured with the others at the start.
  std::map<std::string, double> round1;
  for (const auto& s : r.steps)
    if (s.round == 1) round1[s.move] = s.loss;
  ASSERT_EQ(round1.size(), 4u);
  EXPECT_NEAR(round1.at("input.l0 4→5b"), 0.10445, 5e-6);
  EXPECT_NEAR(round1.at("input.l0 4→3b"), 0.19330, 5e-6);
  EXPECT_NEAR(round1.at("split +0.5 (embedding 2.250, decoder 2.750)"), 0.12812, 5e-6);
  EXPECT_NEAR(round1.at("split -0.5 (embedding 2.750, decoder 2.250)"), 0.14043, 5e-6);
  const auto a = accepted(r);
  ASSERT_GE(a.size(), 3u);
  EXPECT_EQ(a[0].move, "input.l0 4→5b");
  EXPECT_EQ(a[1].move, "input.l0 5→6b");
  EXPECT_DOUBLE_EQ(a[1].config.row_budget_for("decoder"), 2.4);
  EXPECT_NEAR(a[2].loss, 0.08595, 5e-6);
  EXPECT_EQ(a[2].move.rfind("split +0.5", 0), 0u) << a[2].move;
  EXPECT_TRUE(r.converged);
  // Every configuration meets the size exactly; the last round found nothing lower.
  for (const auto& s : r.steps) EXPECT_NEAR(s.size_bits, 5400, 1e-6) << s.move;
  for (const auto& s : r.steps)
    if (s.round == r.rounds) EXPECT_GE(s.loss, r.loss) << s.move;
  EXPECT_EQ(r.config, a.back().config);
  // Each configuration measured once: repeats in later rounds come from the cache.
  EXPECT_LT(r.evaluations, static_cast<int>(r.steps.size()));
}

TEST(JointAllocation, ReachesTheBestAssignmentOfThisSeparableProblem) {
  // Exhaustive over the same lattice (b 1..7, d a multiple of 0.5, budgets within 1..7).
  JointOptions o;
  o.split_step = 0.5;
  o.min_gain = 0;
  o.min_bits = 1;
  const JointProblem p = synthetic();
  const JointResult r = refine_jointly(p, o);
  double best = 1e9;
  for (int b = 1; b <= 7; ++b)
    for (int k = -12; k <= 12; ++k) {
      const double d = 0.5 * k, rr = (5400 - 100.0 * b) / 2000;
      if (rr - d / 2 < 1 || rr + d / 2 > 7 || rr + d / 2 < 1 || rr - d / 2 > 7) continue;
      QuantConfig c = p.start;
      c.matrix_bits["input.l0"] = b;
      c.matrix_row_budget = {{"embedding", rr - d / 2}, {"decoder", rr + d / 2}};
      best = std::min(best, p.loss(c));
    }
  EXPECT_NEAR(r.loss, best, 1e-12);
}

TEST(JointAllocation, AGranularityIsTakenWhenItPaysForItsScales) {
  JointOptions o;
  o.split_step = 0.5;
  o.granularities = {Granularity::kRow, Granularity::Group(64)};
  const JointResult r = refine_jointly(synthetic(true), o);
  EXPECT_EQ(r.config.granularity_for("input.l0"), Granularity::Group(64));
  EXPECT_EQ(r.config.granularity_for("decoder"), Granularity::kRow);  // groups cost it nothing
  EXPECT_NE(r.config.label().find("input.l0=group:64"), std::string::npos) << r.config.label();
  EXPECT_NEAR(r.size_bits, 5400, 1e-6);
  EXPECT_LT(r.loss, r.start_loss);
}

TEST(JointAllocation, MovesWithinTheRoundingSpreadAreNotTaken) {
  // The start's two jittered roundings land 0.02 above and below it: σ = 0.02, so a move must
  // gain more than 2 √2 · 0.02 = 0.0566; the best move of the worked example gains 0.0288.
  JointProblem p = synthetic();
  const auto exact = p.loss;
  p.loss = [exact](const QuantConfig& c) {
    return exact(c) + (c.repeat == 1 ? 0.02 : c.repeat == 2 ? -0.02 : 0.0);
  };
  JointOptions o;
  o.split_step = 0.5;
  o.noise_repeats = 2;
  const JointResult r = refine_jointly(p, o);
  EXPECT_NEAR(r.noise_std, 0.02, 1e-12);
  EXPECT_NEAR(r.min_gain, 2 * std::sqrt(2.0) * 0.02, 1e-12);
  EXPECT_TRUE(accepted(r).empty());
  EXPECT_TRUE(r.converged);
  EXPECT_EQ(r.loss, r.start_loss);
  EXPECT_EQ(r.config.bits_for("input.l0"), 4);
  // Without the floor the same problem moves.
  o.noise_repeats = 0;
  EXPECT_FALSE(accepted(refine_jointly(p, o)).empty());
}

TEST(JointAllocation, Refusals) {
  JointOptions o;
  JointProblem p = synthetic();
  p.rows.clear();
  EXPECT_THROW_MESSAGE(refine_jointly(p, o), std::invalid_argument, "row budgets");
  p = synthetic();
  p.size_bits = 100;  // below every row at 1 bit
  EXPECT_THROW_MESSAGE(refine_jointly(p, o), std::invalid_argument, "cannot meet the size");
  o.split_step = 0;
  EXPECT_THROW_MESSAGE(refine_jointly(synthetic(), o), std::invalid_argument, "split step");
}

TEST(JointAllocation, OnATinyModelTheReportedLossIsTheReturnedConfigurations) {
  const Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LoadedModel l;
  l.model = lmquant::test::tiny_lstm(corpus.vocab.size(), 3);
  l.model->eval();
  l.path = "tiny";
  l.file_sha256 = "0123";
  QuantConfig start;
  start.rounding = Rounding::kGptq;
  start.calib_sequences = 8;
  start.granularity = Granularity::kRow;
  start.grid = Grid::kMidrise;
  start.row_widths = {1, 2, 3, 4};
  start.row_budget = 2;
  start.bits = 3;
  JointOptions o;
  o.max_bits = 5;
  o.max_rounds = 2;
  o.granularities = {Granularity::kRow, Granularity::Group(8)};
  EvalContext test(l, corpus, Split::kTest);
  EXPECT_THROW_MESSAGE(choose_jointly(test, start, 2.0, o), std::invalid_argument, "not on test");
  EvalContext valid(l, corpus, Split::kValid);
  QuantConfig plain = start;
  plain.row_widths.clear();
  plain.row_budget = 0;
  EXPECT_THROW_MESSAGE(choose_jointly(valid, plain, 2.0, o), std::invalid_argument, "--row-widths");
  // T: the start's own size (budget 2 for both vocabulary matrices).
  const double params = static_cast<double>(stored_parameter_count(*l.model));
  const double t = predicted_size_bits(*l.model, start) / params;
  const JointResult r = choose_jointly(valid, start, t, o);
  EXPECT_LE(r.loss, r.start_loss);
  EXPECT_NEAR(r.size_bits / params, t, 1e-9);
  // The configuration it returns quantizes to that size (the row allocation spends at most its
  // budget) and evaluates to the loss it reported.
  QuantizedModel qm = valid.quantize(r.config);
  EXPECT_LE(qm.size_bits, r.size_bits + 1e-6);
  EXPECT_NEAR(evaluate(qm.folded, valid.stream(), valid.options()).loss, r.loss, 1e-9);
  // Round trip of what it chose: per-matrix granularities and row budgets survive JSON.
  EXPECT_EQ(QuantConfig::from_json(r.config.to_json()), r.config);
  EXPECT_FALSE(joint_table(r).empty());
}
