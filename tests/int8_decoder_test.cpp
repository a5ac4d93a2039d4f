// The int8 decoder (engine/int8_decoder.h): the header's worked example, oneDNN's products
// against a float reference of the same integers, the activation-rounding bound against the
// simulated (dequantized) decoder, and refusals.
#include "engine/int8_decoder.h"
#include "corpus/corpus_store.h"
#include "lm/evaluate.h"
#include "lm/nll.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

QuantizedMatrix decoder_matrix(const torch::Tensor& codes, const torch::Tensor& step) {
  QuantizedMatrix m;
  m.name = "decoder";
  m.codes = codes;
  m.step = step;
  m.group_size = codes.size(1);
  m.plan.in = codes.size(1);
  return m;
}

}  // namespace

TEST(Int8Decoder, HeaderExample) {
  auto [q, a] = quantize_rows_int8(torch::tensor({0.5f, -1.0f}).view({1, 2}));
  EXPECT_EQ(q[0][0].item<int>(), 64);  // 63.5 rounds to the even 64
  EXPECT_EQ(q[0][1].item<int>(), -127);
  EXPECT_FLOAT_EQ(a[0].item<float>(), 1.0f / 127);
  Int8Decoder d(decoder_matrix(torch::tensor({3, -2}, torch::kShort).view({1, 2}),
                               torch::tensor({0.1f}).view({1, 1})),
                torch::zeros({1}));
  EXPECT_NEAR(d.logits(torch::tensor({0.5f, -1.0f}).view({1, 2}))[0][0].item<float>(), 0.351181,
              1e-6);
  // A zero row quantizes to zeros with a = 0: its logits are the bias.
  auto [qz, az] = quantize_rows_int8(torch::zeros({1, 3}));
  EXPECT_EQ(qz.abs().sum().item<int>(), 0);
  EXPECT_EQ(az[0].item<float>(), 0.0f);
}

TEST(Int8Decoder, MatchesItsFloatReferenceAndTheActivationBound) {
  torch::manual_seed(21);
  const int64_t V = 1037, K = 48, N = 23;
  auto codes = torch::randint(-127, 128, {V, K}, torch::kShort);
  auto step = torch::rand({V, 1}) * 0.01 + 1e-4;
  auto bias = torch::randn({V});
  Int8Decoder d(decoder_matrix(codes, step), bias);
  auto h = torch::randn({N, K});
  auto y = torch::randint(0, V, {N}, torch::kLong);
  // oneDNN's int32 products equal the float reference of the same integers (exact below 2^24);
  // the NLL then agrees to float rounding.
  const double ref = sum_nll(d.logits(h), y);
  for (int64_t block : {100, 512, 1024, 4096})
    EXPECT_NEAR(d.nll(h, y, block), ref, 1e-5 * std::fabs(ref)) << "block " << block;
  // Against the simulated decoder (dequantized weights, float activations): per logit,
  // |Δz_rv| <= (a_r / 2) · Σ_j |ŵ_vj| (each activation moves by at most half its step a_r).
  auto w_hat = codes.to(torch::kFloat) * step;
  auto z_sim = torch::addmm(bias, h, w_hat.t());
  auto a = std::get<1>(quantize_rows_int8(h));
  auto bound = (a / 2).unsqueeze(1) * w_hat.abs().sum(1).unsqueeze(0);
  EXPECT_TRUE(((d.logits(h) - z_sim).abs() <= bound * 1.0001 + 1e-6).all().item<bool>());
}

TEST(Int8Decoder, RefusesGroupScalesAndWideCodes) {
  auto codes = torch::zeros({4, 8}, torch::kShort);
  EXPECT_THROW_MESSAGE(Int8Decoder(decoder_matrix(codes, torch::ones({4, 2})), torch::zeros({4})),
                       std::invalid_argument, "group scales");
  codes[1][2] = 300;
  EXPECT_THROW_MESSAGE(Int8Decoder(decoder_matrix(codes, torch::ones({4, 1})), torch::zeros({4})),
                       std::invalid_argument, "over 8 bits");
}

TEST(Int8Decoder, EnginePerplexityOnTheTinyModelFollowsTheSimulatedOne) {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LstmLm model = lmquant::test::tiny_lstm(corpus.vocab.size(), 21);
  for (double r : {0.0, 0.2}) {
    QuantConfig q;
    q.bits = 4;
    q.granularity = Granularity::kRow;
    if (r > 0) q.method = Method::kOcs, q.expand_ratio = r, q.build_expanded = true;
    QuantizedModel qm = quantize_model(model, q);
    LstmLm& m = r > 0 ? qm.expanded : qm.folded;  // the engine reads the widened decoder input
    const QuantizedMatrix* dec = nullptr;
    for (const auto& t : qm.tensors)
      if (t.name == "decoder") dec = &t;
    ASSERT_NE(dec, nullptr);
    Int8Decoder engine(*dec, m->decoder_bias);
    EvalOptions o;
    o.batch = 4, o.bptt = 6;
    const double sim = evaluate(m, corpus.train, o).perplexity;
    o.engine.decoder = [&](const torch::Tensor& h, const torch::Tensor& y) { return engine.nll(h, y); };
    const double int8 = evaluate(m, corpus.train, o).perplexity;
    EXPECT_NEAR(int8, sim, 0.005 * sim) << "r = " << r;
  }
}
