// The model plan: targets, granularity, folded vs expanded realisations, OCS function
// preservation, accounting, and option validation.
#include "quant/quantize_model.h"

#include <c10/util/Half.h>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "lm/evaluate.h"
#include "lm/model_io.h"
#include "quant/uniform_quantizer.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

struct Fixture {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LstmLm model{nullptr};
  explicit Fixture(bool tied = false) {
    model = lmquant::test::tiny_lstm(corpus.vocab.size(), 21, tied);
    torch::NoGradGuard g;
    model->w_hh[0][5][3] = 3.0;  // outliers for OCS to find
    model->encoder[2][7] = -1.5;
  }
  double ppl(LstmLm& m) { return evaluate(m, corpus.train, EvalOptions{4, 6, {}, {}}).perplexity; }
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
                       "valid values: all, embedding, input, recurrent");
  EXPECT_THROW_MESSAGE(parse_granularity("channel"), std::invalid_argument, "tensor, row, gate");
  EXPECT_THROW_MESSAGE(parse_method("obq"), std::invalid_argument, "float, clip, ocs");
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

TEST(QuantizeModel, GroupScalesMatchAPlainReference) {
  // group:5 on the 16-wide decoder: columns [0,5) [5,10) [10,15) [15,16) of every row, each with
  // α = max|w| of its five (or one) weights (uniform_quantizer.h's reference, one group at a time).
  Fixture f;
  QuantConfig q;
  q.bits = 3;
  q.granularity = parse_granularity("group:5");
  q.targets = parse_targets("decoder");
  auto m = quantize_model(f.model, q);
  const auto& w = f.model->decoder_weight;
  const auto& got = m.folded->decoder_weight;
  const int64_t rows = w.size(0);
  ASSERT_EQ(m.matrices.size(), 1u);
  EXPECT_EQ(m.matrices[0].groups, rows * 4);
  EXPECT_EQ(m.tensors[0].step.size(1), 4);
  EXPECT_EQ(m.tensors[0].group_size, 5);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < 16; c0 += 5) {
      const int64_t n = std::min<int64_t>(5, 16 - c0);
      auto g = w[r].narrow(0, c0, n).contiguous();
      std::vector<float> v(g.data_ptr<float>(), g.data_ptr<float>() + n);
      // The step α/qmax is stored as float16: the reference's α is that step times qmax = 3.
      const float alpha = g.abs().max().item<float>();
      const float step16 = static_cast<float>(c10::Half(alpha / 3.0f));
      const auto ref = reference_fake_quantize(v, step16 * 3.0f, 3);
      for (int64_t c = 0; c < n; ++c)
        ASSERT_FLOAT_EQ(got[r][c0 + c].item<float>(), ref[static_cast<size_t>(c)])
            << r << "," << c0 + c;
    }
  // Accounting: 3 bits per weight and a 16-bit step per group for the decoder (one 32-bit step
  // per tensor).
  QuantConfig none = q;
  none.granularity = Granularity::kTensor;
  auto t = quantize_model(f.model, none);
  EXPECT_DOUBLE_EQ(m.size_bits - t.size_bits, 16.0 * rows * 4 - 32.0);
  // Group sizes that are not >= 1, and group scales with grid-aware OCS, are refused.
  EXPECT_THROW_MESSAGE(parse_granularity("group:0"), std::invalid_argument, "G >= 1");
  EXPECT_THROW_MESSAGE(parse_granularity("group:x"), std::invalid_argument, "G >= 1");
  auto o = ocs(4, 0.1, true);
  o.granularity = Granularity::Group(8);
  EXPECT_THROW_MESSAGE(o.validate(), std::invalid_argument, "whole-row groups");
}

TEST(QuantizeModel, GroupScalesWithOcsRunOverTheWidenedRow) {
  Fixture f;
  auto q = ocs(4, 0.2);
  q.granularity = Granularity::Group(8);
  auto m = quantize_model(f.model, q);
  for (const auto& r : m.matrices) EXPECT_EQ(r.groups, r.rows * ((16 + 4 + 7) / 8)) << r.name;
  const double folded = f.ppl(m.folded), expanded = f.ppl(m.expanded);
  EXPECT_NEAR(expanded, folded, 1e-4 * folded);
}

namespace {

double layer_output_error(const torch::Tensor& w, const torch::Tensor& w_hat,
                          const torch::Tensor& x) {
  return (w - w_hat).to(torch::kDouble).mm(x.to(torch::kDouble).t()).norm().item<double>();
}

}  // namespace

TEST(QuantizeModel, GptqNeedsCalibrationAndLowersEachStagesOutputError) {
  Fixture f;
  QuantConfig q;
  q.bits = 3;
  q.granularity = Granularity::kRow;
  q.rounding = Rounding::kGptq;
  EXPECT_THROW_MESSAGE(quantize_model(f.model, q), std::invalid_argument, "calibration");
  CalibrationOptions co;
  co.sequences = 64;
  co.length = 12;
  co.warmup = 6;
  const Calibration cal = make_calibration(f.corpus.train, co);
  EXPECT_EQ(cal.tokens.size(0), 18);
  EXPECT_EQ(cal.tokens.size(1), 64);
  QuantConfig rtn = q;
  rtn.rounding = Rounding::kNearest;
  // Layer 0 as one matrix [W_ih | W_hh] on [x_t ; h_{t−1}] (the embedding stays float, so the
  // float model's inputs are the ones GPTQ saw).
  q.targets = rtn.targets = parse_targets("input,recurrent");
  auto g = quantize_model(f.model, q, &cal);
  auto n = quantize_model(f.model, rtn);
  auto x = calibration_inputs(*f.model, cal, {"input.l0", "recurrent.l0"});
  auto X = torch::cat({x.at("input.l0"), x.at("recurrent.l0")}, 1);
  auto joint = [](const LstmLm& m) { return torch::cat({m->w_ih[0], m->w_hh[0]}, 1); };
  const double eg = layer_output_error(joint(f.model), joint(g.folded), X),
               en = layer_output_error(joint(f.model), joint(n.folded), X);
  EXPECT_LT(eg, en) << "layer 0: gptq " << eg << ", nearest " << en;
  EXPECT_EQ(q.label(), "gptq max 3b row");
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  // The decoder is rounded to nearest unless gptq_decoder; then compensated on the top h_t.
  q.targets = rtn.targets = parse_targets("decoder");
  auto nd = quantize_model(f.model, rtn);
  auto off = quantize_model(f.model, q, &cal);
  EXPECT_TRUE(torch::equal(off.folded->decoder_weight, nd.folded->decoder_weight));
  q.gptq_decoder = true;
  auto gd = quantize_model(f.model, q, &cal);
  auto xd = calibration_inputs(*f.model, cal, {"decoder"}).at("decoder");
  EXPECT_LT(layer_output_error(f.model->decoder_weight, gd.folded->decoder_weight, xd),
            layer_output_error(f.model->decoder_weight, nd.folded->decoder_weight, xd));
  EXPECT_EQ(q.label(), "gptq max 3b row +decoder");
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  // A record without the setting (lmquant < 0.3) had its decoder compensated.
  auto legacy = q.to_json();
  legacy.erase("gptq_decoder");
  EXPECT_TRUE(QuantConfig::from_json(legacy).gptq_decoder);
  rtn.gptq_decoder = true;
  EXPECT_THROW_MESSAGE(rtn.validate(), std::invalid_argument, "setting of gptq rounding");
}

TEST(QuantizeModel, FisherDecoderCompensatesEachRowAgainstTheOutputDistribution) {
  // fisher_decoder: the (untied) decoder rounded row by row with F_v (quant/decoder_fisher.h),
  // on the inputs the quantized layers below give it. Its codes lower the second-order KL
  // Σ_v δ_vᵀ F_v δ_v (F_v from the definition, dense) below rounding to nearest; rotated, with
  // row widths, it runs and keeps the rotation; the tied matrix stays rounded to nearest.
  Fixture f;
  CalibrationOptions co;
  co.sequences = 64;
  co.length = 10;
  co.warmup = 5;
  const Calibration cal = make_calibration(f.corpus.train, co);
  QuantConfig q;
  q.bits = 3;
  q.clip = ClipRule::parse("mse");
  q.granularity = parse_granularity("row");
  q.rounding = Rounding::kGptq;
  q.targets = parse_targets("decoder");
  q.fisher_decoder = true;
  QuantConfig rtn = q;
  rtn.rounding = Rounding::kNearest;
  rtn.fisher_decoder = false;
  auto fd = quantize_model(f.model, q, &cal);
  auto nd = quantize_model(f.model, rtn);
  const auto x = calibration_inputs(*f.model, cal, {"decoder"}).at("decoder").to(torch::kDouble);
  const auto w = f.model->decoder_weight.detach().to(torch::kDouble);
  const auto p = torch::softmax(x.mm(w.t()) + f.model->decoder_bias.to(torch::kDouble), 1);
  const auto F =
      torch::einsum("tv,ti,tj->vij", {p * (1 - p), x, x}) / static_cast<double>(x.size(0));
  auto second_order = [&](const torch::Tensor& wq) {
    auto d = (w - wq.detach().to(torch::kDouble)).unsqueeze(2);
    return d.transpose(1, 2).bmm(F).bmm(d).sum().item<double>() / 2;
  };
  EXPECT_LT(second_order(fd.folded->decoder_weight), second_order(nd.folded->decoder_weight));
  EXPECT_EQ(q.label(), "gptq mse 3b row +decoder(fisher)");
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  // Rotated, with row widths: finite, the rotation stored with the codes.
  q.targets = parse_targets("all");
  q.grid = Grid::kMidrise;
  q.rotate = true;
  q.row_widths = {1, 2, 3};
  q.row_budget = 2.0;
  auto rot = quantize_model(f.model, q, &cal);
  EXPECT_TRUE(std::isfinite(f.ppl(rot.folded)));
  for (const auto& t : rot.tensors)
    if (t.name == "decoder") EXPECT_TRUE(t.rotation.defined());
  // Settings it does not combine with.
  auto both = q;
  both.gptq_decoder = true;
  EXPECT_THROW_MESSAGE(both.validate(), std::invalid_argument, "choose one");
  auto alpha = q;
  alpha.alpha_by_output = true;
  EXPECT_THROW_MESSAGE(alpha.validate(), std::invalid_argument, "Hessian per row");
  auto nearest = q;
  nearest.rounding = Rounding::kNearest;
  EXPECT_THROW_MESSAGE(nearest.validate(), std::invalid_argument, "setting of gptq rounding");
  // Tied: the one matrix is the embedding's lookup too: the tied objective (tied_objective.h),
  // not the nearest rounding it had before it existed.
  Fixture tied(true);
  QuantConfig qt;
  qt.bits = 3;
  qt.granularity = parse_granularity("row");
  qt.rounding = Rounding::kGptq;
  qt.fisher_decoder = true;
  QuantConfig qn = qt;
  qn.rounding = Rounding::kNearest;
  qn.fisher_decoder = false;
  const auto qtm = quantize_model(tied.model, qt, &cal);
  EXPECT_EQ(qtm.matrices.front().objective, "tied");
  EXPECT_FALSE(torch::equal(qtm.folded->encoder, quantize_model(tied.model, qn).folded->encoder));
}

TEST(QuantizeModel, GptqWithOcsAndTiedWeights) {
  CalibrationOptions co;
  co.sequences = 32;
  co.length = 10;
  co.warmup = 5;
  for (bool tied : {false, true}) {
    Fixture f(tied);
    const Calibration cal = make_calibration(f.corpus.train, co);
    auto q = ocs(4, 0.2);
    q.rounding = Rounding::kGptq;
    auto m = quantize_model(f.model, q, &cal);  // duplicated inputs: singular H, dampened
    const double folded = f.ppl(m.folded), expanded = f.ppl(m.expanded);
    EXPECT_TRUE(std::isfinite(folded));
    EXPECT_NEAR(expanded, folded, 1e-4 * folded) << "tied " << tied;
    // The embedding (and a tied embedding/decoder) has no input to compensate with: nearest.
    auto r = ocs(4, 0.2);
    auto n = quantize_model(f.model, r);
    EXPECT_TRUE(torch::equal(m.folded->encoder, n.folded->encoder)) << "tied " << tied;
    EXPECT_FALSE(torch::equal(m.folded->w_hh[1], n.folded->w_hh[1])) << "tied " << tied;
  }
  auto bad = ocs(4, 0.2, true);
  bad.rounding = Rounding::kGptq;
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "not with gptq");
}

TEST(QuantizeModel, AlphaByOutputTheHeadersExample) {
  // One row, H = I (the objective is the weight error), 2-bit midrise, clip max (α_r = 1): over
  // kAlphaFactors the least error is at c = 0.85.
  const std::vector<float> w = {1.0f, 0.1f, -0.1f, 0.2f};
  double best = INFINITY, best_c = 0;
  for (double c : kAlphaFactors) {
    const auto q = reference_fake_quantize(w, static_cast<float>(c), 2, Grid::kMidrise);
    double e = 0;
    for (size_t i = 0; i < w.size(); ++i) e += (w[i] - q[i]) * (w[i] - q[i]);
    if (c == 1.0) EXPECT_NEAR(e, 0.1267, 1e-4);
    if (c == 0.85) EXPECT_NEAR(e, 0.0967, 1e-4);
    if (c == 0.6) EXPECT_NEAR(e, 0.18, 1e-4);
    if (e < best) best = e, best_c = c;
  }
  EXPECT_EQ(best_c, 0.85);
}

TEST(QuantizeModel, AlphaByOutputNeverRaisesTheCompensatedOutputError) {
  Fixture f;
  CalibrationOptions co;
  co.sequences = 64, co.length = 12, co.warmup = 6;
  const Calibration cal = make_calibration(f.corpus.train, co);
  QuantConfig q;
  q.bits = 3, q.clip = ClipRule::parse("mse"), q.granularity = Granularity::kRow;
  q.rounding = Rounding::kGptq, q.targets = parse_targets("input,recurrent");
  QuantConfig a = q;
  a.alpha_by_output = true;
  const auto mq = quantize_model(f.model, q, &cal), ma = quantize_model(f.model, a, &cal);
  // Layer 0 as one matrix on [x ; h]: the search keeps c = 1 where nothing is better, so the
  // summed output error on the calibration inputs it was chosen on can only fall.
  auto x = calibration_inputs(*f.model, cal, {"input.l0", "recurrent.l0"});
  const auto X = torch::cat({x.at("input.l0"), x.at("recurrent.l0")}, 1);
  auto joint = [](const LstmLm& m) { return torch::cat({m->w_ih[0], m->w_hh[0]}, 1); };
  const double eq = layer_output_error(joint(f.model), joint(mq.folded), X),
               ea = layer_output_error(joint(f.model), joint(ma.folded), X);
  EXPECT_LT(ea, eq);
  // Some rows took a smaller α: the mean α of layer 0's matrices fell.
  for (size_t i = 0; i < mq.matrices.size(); ++i)
    if (mq.matrices[i].name == "recurrent.l0")
      EXPECT_LT(ma.matrices[i].alpha, mq.matrices[i].alpha);
  EXPECT_EQ(a.label(), "gptq mse 3b row α-out");
  EXPECT_EQ(QuantConfig::from_json(a.to_json()), a);
  a.granularity = Granularity::kTensor;
  EXPECT_THROW_MESSAGE(a.validate(), std::invalid_argument, "row or group:G");
  a.granularity = Granularity::kRow, a.rounding = Rounding::kNearest;
  EXPECT_THROW_MESSAGE(a.validate(), std::invalid_argument, "setting of gptq rounding");
}
