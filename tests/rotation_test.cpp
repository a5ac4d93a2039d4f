// Incoherence processing (quant/rotation.h): the rotation is orthogonal and reproducible, the
// header's worked example, μ, and the model plan with rotated matrices (function kept at 16 bits,
// gptq on Qᵀ H Q, files that draw Q again, validation).
#include "quant/rotation.h"

#include <cmath>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "engine/int8_engine.h"
#include "lm/evaluate.h"
#include "quant/quantize_model.h"
#include "quant/quantized_io.h"
#include "quant/uniform_quantizer.h"
#include "test_utils.h"

using namespace lmquant;

TEST(Rotation, IsOrthogonalAndTheSameForTheSameSeed) {
  for (int64_t n : {1, 2, 7, 64, 200}) {
    const auto q = random_rotation(n, rotation_seed(1, n));
    ASSERT_EQ(q.sizes(), (std::vector<int64_t>{n, n}));
    const auto qd = q.to(torch::kDouble);
    EXPECT_LT((qd.t().mm(qd) - torch::eye(n, torch::kDouble)).abs().max().item<double>(), 1e-6)
        << n;
    EXPECT_TRUE(torch::equal(q, random_rotation(n, rotation_seed(1, n)))) << n;
  }
  EXPECT_FALSE(torch::equal(random_rotation(8, 1), random_rotation(8, 2)));
  EXPECT_NE(rotation_seed(1, 200), rotation_seed(2, 200));
  EXPECT_NE(rotation_seed(1, 200), rotation_seed(1, 201));
  EXPECT_THROW_MESSAGE(random_rotation(0, 1), std::invalid_argument, "width");
}

TEST(Rotation, DrawsAreCentredAndSpreadLikeAHaarRotation) {
  // The entries of a Haar-random n x n rotation have mean 0 and variance 1/n.
  const int64_t n = 200;
  const auto q = random_rotation(n, 99).to(torch::kDouble);
  EXPECT_NEAR(q.mean().item<double>(), 0.0, 5.0 / n);
  EXPECT_NEAR(q.pow(2).mean().item<double>(), 1.0 / n, 1e-9);  // exact: rows of unit norm
  EXPECT_LT(q.abs().max().item<double>(), 6.0 / std::sqrt(static_cast<double>(n)));
}

TEST(Rotation, TheHeadersWorkedExample) {
  // w = [2, 0], Q the rotation by 45°: μ falls from √2 to 1, and at 1 bit (midrise ±s, α = max|w|)
  // the rotated row is exact while the plain one is not.
  const double r = 1 / std::sqrt(2.0);
  const auto q = torch::tensor({{r, -r}, {r, r}}, torch::kDouble);
  const auto w = torch::tensor({{2.0, 0.0}}, torch::kDouble);
  EXPECT_NEAR(incoherence(w), std::sqrt(2.0), 1e-12);
  const auto wq = w.mm(q);
  EXPECT_NEAR(wq[0][0].item<double>(), std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(wq[0][1].item<double>(), -std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(incoherence(wq), 1.0, 1e-12);
  const auto plain = reference_fake_quantize({2.0f, 0.0f}, 2.0f, 1, Grid::kMidrise);
  EXPECT_FLOAT_EQ(plain[0], 2.0f);
  EXPECT_FLOAT_EQ(plain[1], 2.0f);  // 0 has no level: error² 4
  const float s = static_cast<float>(std::sqrt(2.0));
  const auto rot = reference_fake_quantize({s, -s}, s, 1, Grid::kMidrise);
  const auto back = torch::tensor({{rot[0], rot[1]}}, torch::kDouble).mm(q.t());
  EXPECT_NEAR(back[0][0].item<double>(), 2.0, 1e-6);
  EXPECT_NEAR(back[0][1].item<double>(), 0.0, 1e-6);
  EXPECT_EQ(incoherence(torch::zeros({2, 3})), 0.0);
  EXPECT_NEAR(incoherence(torch::full({3, 4}, -0.5)), 1.0, 1e-12);
}

namespace {

struct Tiny {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LstmLm model{nullptr};
  explicit Tiny(bool tied = false) {
    model = lmquant::test::tiny_lstm(corpus.vocab.size(), 27, tied);
    torch::NoGradGuard g;
    for (int64_t r = 0; r < 64; ++r) model->w_hh[0][r][3] *= 12;  // an outlier input channel
  }
  double ppl(LstmLm m) { return evaluate(m, corpus.train, EvalOptions{4, 6, {}, {}}).perplexity; }
};

}  // namespace

TEST(Rotation, KeepsTheFunctionAtSixteenBitsAndSpreadsAnOutlierChannel) {
  for (bool tied : {false, true}) {
    Tiny t(tied);
    QuantConfig q;
    q.bits = 16, q.granularity = Granularity::kRow, q.rotate = true;
    const auto m = quantize_model(t.model, q);
    const double fl = t.ppl(t.model);
    EXPECT_NEAR(t.ppl(m.folded), fl, 1e-4 * fl) << "tied " << tied;
    for (const auto& tq : m.tensors) {
      ASSERT_TRUE(tq.rotation.defined()) << tq.name;
      EXPECT_EQ(tq.rotation_seed, rotation_seed(1, tq.codes.size(1)));
    }
    // recurrent.l0's column 3 stands out; rotated, the largest |weight| shrinks.
    for (const auto& r : m.matrices)
      if (r.name == "recurrent.l0") EXPECT_LT(r.max_abs_after, 0.6 * r.max_abs_before);
    // At 3 bits the outlier matrix loses less with the rotation.
    QuantConfig q3 = q, p3 = q;
    q3.bits = p3.bits = 3;
    p3.rotate = false;
    const auto a = quantize_model(t.model, q3), b = quantize_model(t.model, p3);
    double ea = 0, eb = 0;
    for (const auto& r : a.matrices)
      if (r.name == "recurrent.l0") ea = r.mse;
    for (const auto& r : b.matrices)
      if (r.name == "recurrent.l0") eb = r.mse;
    EXPECT_LT(ea, eb);
    // Accounting: a 64-bit seed per rotated matrix, as predicted.
    EXPECT_NEAR(a.size_bits, b.size_bits + 64.0 * static_cast<double>(a.tensors.size()), 1e-6);
    EXPECT_NEAR(predicted_size_bits(*t.model, q3), a.size_bits, 1e-6);
  }
}

TEST(Rotation, GptqCompensatesInTheRotatedBasis) {
  Tiny t;
  CalibrationOptions co;
  co.sequences = 64, co.length = 12, co.warmup = 6;
  const Calibration cal = make_calibration(t.corpus.train, co);
  QuantConfig g;
  g.bits = 3, g.granularity = Granularity::kRow, g.rounding = Rounding::kGptq, g.rotate = true;
  g.targets = parse_targets("input,recurrent");
  QuantConfig n = g;
  n.rounding = Rounding::kNearest;
  const auto mg = quantize_model(t.model, g, &cal), mn = quantize_model(t.model, n);
  // Layer 0 as one matrix [W_ih | W_hh] on [x ; h]: its output error on the calibration inputs
  // (the float model's: the embedding is not quantized) is lower with compensation.
  auto x = calibration_inputs(*t.model, cal, {"input.l0", "recurrent.l0"});
  const auto X = torch::cat({x.at("input.l0"), x.at("recurrent.l0")}, 1);
  auto err = [&](const LstmLm& m) {
    const auto w = torch::cat({t.model->w_ih[0], t.model->w_hh[0]}, 1);
    const auto wh = torch::cat({m->w_ih[0], m->w_hh[0]}, 1);
    return (X.mm((w - wh).t())).pow(2).sum().item<double>();
  };
  EXPECT_LT(err(mg.folded), err(mn.folded));
  EXPECT_EQ(g.label(), "gptq max 3b row rot");
  EXPECT_EQ(QuantConfig::from_json(g.to_json()), g);
  g.rotation_seed = 7;
  EXPECT_EQ(g.label(), "gptq max 3b row rot=7");
  EXPECT_EQ(QuantConfig::from_json(g.to_json()), g);
  QuantConfig o;
  o.method = Method::kOcs, o.expand_ratio = 0.1, o.rotate = true;
  EXPECT_THROW_MESSAGE(o.validate(), std::invalid_argument, "not ocs");
}

TEST(Rotation, FilesStoreTheSeedAndDrawQAgain) {
  lmquant::test::TempDir tmp;
  Tiny t;
  LoadedModel src;
  src.model = t.model;
  src.path = "src.lmq", src.file_sha256 = "cafe";
  QuantConfig q;
  q.bits = 3, q.granularity = Granularity::kRow, q.grid = Grid::kMidrise, q.rotate = true;
  q.rotation_seed = 5;
  const auto qm = quantize_model(t.model, q);
  for (bool packed : {false, true}) {
    const std::string path = tmp.file(packed ? "p.lmq" : "q.lmq");
    save_quantized(path, src, qm, packed);
    const QuantizedFile f = read_quantized(path);
    for (const auto& [name, w] : qm.folded->named_weights())
      for (const auto& [n2, w2] : f.loaded.model->named_weights())
        if (n2 == name) EXPECT_LT(lmquant::test::max_rel_diff(w2, w), 1e-6) << name;
    for (const auto& m : f.matrices) {
      ASSERT_TRUE(m.rotation.defined()) << m.name;
      EXPECT_EQ(m.rotation_seed, rotation_seed(5, m.codes.size(1)));
    }
    EXPECT_EQ(QuantConfig::from_json(f.loaded.meta.at("quant")), q);
  }
}

TEST(Rotation, TheInt8EngineRotatesItsInputsOnline) {
  // Rotated everywhere (the embedding's Q folds into W_ih of layer 0), and with the embedding
  // left float (then layer 0 rotates its input): the int8 engine on the packed file scores
  // within 0.5% of the simulated model.
  for (const char* targets : {"all", "input,recurrent,decoder"}) {
    lmquant::test::TempDir tmp;
    Tiny t;
    LoadedModel src;
    src.model = t.model;
    src.path = "src.lmq", src.file_sha256 = "d00d";
    QuantConfig q;
    q.bits = 4, q.clip = ClipRule::parse("mse"), q.granularity = Granularity::kRow;
    q.grid = Grid::kMidrise, q.rotate = true, q.targets = parse_targets(targets);
    const auto qm = quantize_model(t.model, q);
    save_quantized(tmp.file("p.lmq"), src, qm, /*packed=*/true);
    const auto e = lmquant::test::simulated_and_int8_engine(qm, tmp.file("p.lmq"), t.corpus.train);
    const double want = e.simulated, got = e.int8_engine;
    EXPECT_NEAR(got, want, 0.005 * want) << targets;
    // The control: the same codes read without the online rotations land ten times further off
    // (the untrained model's near-uniform predictions hide much of it in perplexity).
    QuantizedFile g = read_quantized(tmp.file("p.lmq"), torch::kCPU, false);
    for (auto& m : g.matrices) m.rotation = torch::Tensor();
    EvalOptions o;
    o.batch = 4, o.bptt = 6;
    o.engine = int8_engine(g);
    const double off = evaluate(g.loaded.model, t.corpus.train, o).perplexity;
    EXPECT_GT(std::abs(off - want), 10 * std::abs(got - want))
        << targets << ": " << got << " " << off << " vs " << want;
  }
}
