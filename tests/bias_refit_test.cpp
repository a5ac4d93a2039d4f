// The decoder's bias refitted to the float model's output distribution (quant/bias_refit.h): the
// header's worked example, the objective against a direct mean KL, monotone descent to matched
// marginals, and its use by quantize_model.
#include "quant/bias_refit.h"

#include <cmath>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "quant/calibration.h"
#include "quant/quantize_model.h"
#include "quant/quantized_io.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

// The mean KL(p_t ‖ p̂_t) computed directly from both softmaxes.
double direct_kl(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b,
                 const torch::Tensor& h_hat, const torch::Tensor& w_hat,
                 const torch::Tensor& b_hat) {
  const auto logp = torch::log_softmax(torch::addmm(b, h, w.t()).to(torch::kDouble), 1);
  const auto logq = torch::log_softmax(torch::addmm(b_hat, h_hat, w_hat.t()).to(torch::kDouble), 1);
  return (logp.exp() * (logp - logq)).sum(1).mean().item<double>();
}

}  // namespace

TEST(BiasRefit, WorkedExample) {
  const auto h = torch::ones({1, 1});
  const auto w = torch::zeros({2, 1}), b = torch::zeros({2});
  const auto w_hat = torch::tensor({std::log(2.0f), 0.0f}).view({2, 1});
  const BiasRefit r = refit_decoder_bias(h, w, b, h, w_hat, 1);
  ASSERT_EQ(r.kl.size(), 2u);
  EXPECT_NEAR(r.kl[0], 0.5 * std::log(0.75) + 0.5 * std::log(1.5), 1e-6);  // 0.0589 nats
  EXPECT_NEAR(r.kl[1], 0.0, 1e-7);
  EXPECT_NEAR(r.bias[0].item<float>(), std::log(0.75f), 1e-6);
  EXPECT_NEAR(r.bias[1].item<float>(), std::log(1.5f), 1e-6);
}

TEST(BiasRefit, DescendsToMatchedMarginals) {
  torch::manual_seed(3);
  const int64_t N = 300, n = 8, V = 40;
  const auto h = torch::randn({N, n}), w = torch::randn({V, n}) * 0.7, b = torch::randn({V});
  // The quantized side: perturbed weights and inputs (a mean shift per row included).
  const auto w_hat = w + 0.3 * torch::randn({V, n}) + 0.2 * torch::randn({V, 1});
  const auto h_hat = h + 0.1 * torch::randn({N, n});
  const BiasRefit r = refit_decoder_bias(h, w, b, h_hat, w_hat, 60);
  // The objective it tracks is the mean KL, at the start and at the end.
  EXPECT_NEAR(r.kl.front(), direct_kl(h, w, b, h_hat, w_hat, b), 1e-6);
  EXPECT_NEAR(r.kl.back(), direct_kl(h, w, b, h_hat, w_hat, r.bias), 1e-6);
  // Monotone (to the float32 logits' rounding, ~1e-6 nats, once converged).
  for (size_t i = 1; i < r.kl.size(); ++i) EXPECT_LE(r.kl[i], r.kl[i - 1] + 1e-5) << i;
  EXPECT_LT(r.kl.back(), 0.8 * r.kl.front());
  // At the optimum the gradient (P̂ − P) / N vanishes: the marginals match.
  const auto p = torch::softmax(torch::addmm(b, h, w.t()), 1).sum(0);
  const auto q = torch::softmax(torch::addmm(r.bias, h_hat, w_hat.t()), 1).sum(0);
  EXPECT_LT(((p - q).abs() / N).max().item<float>(), 1e-4);
  // A bias moved anywhere else by a little does worse (convex objective at its minimum).
  for (int k = 0; k < 5; ++k)
    EXPECT_GT(direct_kl(h, w, b, h_hat, w_hat, r.bias + 0.05 * torch::randn({V})), r.kl.back());
}

TEST(BiasRefit, ZeroIterationsKeepTheBiasAndShapesAreChecked) {
  const auto h = torch::randn({5, 3}), w = torch::randn({4, 3}), b = torch::randn({4});
  const BiasRefit r = refit_decoder_bias(h, w, b, h, w, 0);
  EXPECT_TRUE(torch::equal(r.bias, b));
  ASSERT_EQ(r.kl.size(), 1u);
  EXPECT_NEAR(r.kl[0], 0.0, 1e-6);  // the same model: no divergence
  EXPECT_THROW_MESSAGE(refit_decoder_bias(h, w, b, h.narrow(0, 0, 4), w), std::invalid_argument,
                       "bias refit");
  EXPECT_THROW_MESSAGE(refit_decoder_bias(h, w, b, h, w, -1), std::invalid_argument,
                       "iterations must be");
}

TEST(BiasRefit, QuantizeModelRefitsTheBiasAndThePackedFileCarriesIt) {
  const Corpus corpus = load_word_corpus(locate_corpus(test::tiny_corpus_dir(), {}));
  for (bool tied : {false, true}) {
    LoadedModel src;
    src.model = test::tiny_lstm(corpus.vocab.size(), 9, tied);
    src.path = "src.lmq", src.file_sha256 = "cafe";
    CalibrationOptions o;
    o.sequences = 32, o.length = 5, o.warmup = 3;
    const Calibration cal = make_calibration(corpus.train, o);
    QuantConfig q;
    q.bits = 2;
    q.clip = ClipRule::parse("mse");
    q.granularity = Granularity::kRow;
    const QuantizedModel plain = quantize_model(src.model, q, &cal);
    q.refit_decoder_bias = true;
    EXPECT_THROW_MESSAGE(quantize_model(src.model, q), std::invalid_argument, "calibration");
    const QuantizedModel refit = quantize_model(src.model, q, &cal);
    // The same codes; only the decoder's bias moved, and the calibration KL fell.
    ASSERT_EQ(refit.tensors.size(), plain.tensors.size());
    for (size_t i = 0; i < refit.tensors.size(); ++i)
      EXPECT_TRUE(torch::equal(refit.tensors[i].codes, plain.tensors[i].codes));
    EXPECT_FALSE(torch::equal(refit.folded->decoder_bias, src.model->decoder_bias));
    ASSERT_EQ(refit.bias_refit_kl.size(), static_cast<size_t>(kBiasRefitIterations + 1));
    EXPECT_LT(refit.bias_refit_kl.back(), refit.bias_refit_kl.front());
    EXPECT_DOUBLE_EQ(refit.size_bits, plain.size_bits);  // the bias was 32 bits already
    EXPECT_NE(refit.config.label().find("+bias(refit)"), std::string::npos);
    EXPECT_TRUE(refit.config.to_json().value("refit_decoder_bias", false));
    EXPECT_TRUE(QuantConfig::from_json(refit.config.to_json()).refit_decoder_bias);
    // The packed file holds the refitted bias: reloaded, it is the folded model's.
    test::TempDir tmp;
    save_quantized(tmp.file("q.lmq"), src, refit, /*packed=*/true);
    const LoadedModel back = load_any_model(tmp.file("q.lmq"));
    EXPECT_TRUE(torch::equal(back.model->decoder_bias, refit.folded->decoder_bias)) << tied;
    EXPECT_TRUE(back.meta["quant"].value("refit_decoder_bias", false));
  }
}
