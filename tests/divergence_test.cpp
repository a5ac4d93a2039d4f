// KL to float and top-1 agreement (lm/divergence.h): the header's worked example, the blocked
// kernel against the log_softmax reference, identical models, ties, and evaluate() with a
// reference model against a plain loop over whole logits.
#include "lm/divergence.h"

#include <cmath>

#include "corpus/batching.h"
#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "lm/evaluate.h"
#include "quant/quantize_model.h"
#include "report/bootstrap.h"
#include "report/record.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

BlockLogits from_tensor(const torch::Tensor& z) {
  return [z](int64_t j0, int64_t n, float* out, int64_t ld) {
    const int64_t N = z.size(0);
    for (int64_t r = 0; r < N; ++r)
      for (int64_t j = 0; j < n; ++j) out[r * ld + j] = z[r][j0 + j].item<float>();
  };
}

}  // namespace

TEST(Divergence, WorkedExampleOfTheHeader) {
  auto zp = torch::tensor({{0.0f, static_cast<float>(std::log(2.0))}});
  auto zq = torch::tensor({{0.0f, 0.0f}});
  auto y = torch::tensor({int64_t{1}});
  double kl_row = -1, nq_row = -1;
  for (int64_t block : {1, 2, 1024}) {
    const PairedNll d =
        paired_blocked_nll(1, 2, y, block, from_tensor(zp), from_tensor(zq), &kl_row, &nq_row);
    EXPECT_NEAR(d.kl, 0.056633, 1e-6) << "block " << block;
    EXPECT_NEAR(kl_row, 1.0 / 3 * std::log(2.0 / 3) + 2.0 / 3 * std::log(4.0 / 3), 1e-6);
    EXPECT_EQ(d.top1_agree, 0);  // p's argmax 1, q's 0 (a tie: the lowest index)
    EXPECT_NEAR(d.nll_q, std::log(2.0), 1e-6);
    EXPECT_NEAR(nq_row, std::log(2.0), 1e-6);
    EXPECT_NEAR(d.nll_p, std::log(3.0) - std::log(2.0), 1e-6);
  }
  const PairedNll ref = paired_nll_dense(zp, zq, y);
  EXPECT_NEAR(ref.kl, 0.056633, 1e-6);
  EXPECT_EQ(ref.top1_agree, 0);
}

TEST(Divergence, BlockedEqualsTheLogSoftmaxReference) {
  torch::manual_seed(3);
  const int64_t N = 37, V = 1000;
  auto zp = torch::randn({N, V}) * 3;
  auto zq = zp + torch::randn({N, V}) * 0.3;
  zq[4] = zp[4];  // one row identical
  auto y = torch::randint(0, V, {N}, torch::kLong);
  std::vector<double> kl_ref(N), nq_ref(N);
  const PairedNll ref = paired_nll_dense(zp, zq, y, kl_ref.data(), nq_ref.data());
  EXPECT_GT(ref.kl, 0);
  for (int64_t block : {1, 7, 128, 999, 4096}) {
    std::vector<double> kl(N), nq(N);
    // The float producer (addmm) path: logits as h · Wᵀ + b with h = I, W = zᵀ, b = 0.
    const auto eye = torch::eye(N);
    const auto zero = torch::zeros({V});
    const PairedNll d = paired_blocked_nll(
        N, V, y, block, float_decoder_logits(eye, zp.t().contiguous(), zero),
        float_decoder_logits(eye, zq.t().contiguous(), zero), kl.data(), nq.data());
    EXPECT_NEAR(d.kl, ref.kl, 1e-5 * ref.kl) << "block " << block;
    EXPECT_NEAR(d.nll_q, ref.nll_q, 1e-6 * ref.nll_q);
    EXPECT_NEAR(d.nll_p, ref.nll_p, 1e-6 * ref.nll_p);
    EXPECT_EQ(d.top1_agree, ref.top1_agree);
    for (int64_t r = 0; r < N; ++r) {
      EXPECT_NEAR(kl[r], kl_ref[r], 1e-5 + 1e-4 * kl_ref[r]) << "row " << r;
      EXPECT_NEAR(nq[r], nq_ref[r], 1e-5 * nq_ref[r]);
    }
    EXPECT_NEAR(kl[4], 0.0, 1e-6);
  }
}

TEST(Divergence, IdenticalModelsAndTies) {
  torch::manual_seed(4);
  auto z = torch::randn({5, 300});
  z[2].fill_(1.5f);  // all tied: both argmaxes are column 0
  auto y = torch::randint(0, 300, {5}, torch::kLong);
  std::vector<double> kl(5);
  const PairedNll d =
      paired_blocked_nll(5, 300, y, 64, from_tensor(z), from_tensor(z.clone()), kl.data());
  for (double k : kl) EXPECT_NEAR(k, 0.0, 1e-6);
  EXPECT_EQ(d.top1_agree, 5);
  EXPECT_NEAR(d.nll_p, d.nll_q, 1e-9);
}

TEST(Divergence, RefusesTargetsOutsideTheVocabulary) {
  auto z = torch::zeros({2, 3});
  EXPECT_THROW(paired_blocked_nll(2, 3, torch::tensor({0, 3}, torch::kLong), 2, from_tensor(z),
                                  from_tensor(z)),
               c10::Error);
}

TEST(Divergence, EvaluateWithAReferenceEqualsAWholeLogitsLoop) {
  Corpus c = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  torch::manual_seed(6);
  LstmLmConfig cfg;
  cfg.vocab = c.vocab.size();
  cfg.emb = cfg.hidden = 12;
  LstmLm fl(cfg);
  QuantConfig q;
  q.bits = 3;
  q.granularity = Granularity::kRow;
  QuantizedModel qm = quantize_model(fl, q);
  EvalOptions o{3, 7, {}, {}, fl};
  const EvalResult r = evaluate(qm.folded, c.train, o);
  const EvalResult plain = evaluate(qm.folded, c.train, EvalOptions{3, 7, {}, {}, {nullptr}});
  ASSERT_TRUE(r.has_divergence());
  EXPECT_FALSE(plain.has_divergence());
  EXPECT_EQ(r.chunk_kl.size(), r.chunk_nll.size());
  EXPECT_NEAR(r.total_nll, plain.total_nll, 1e-6 * plain.total_nll);  // the same NLL
  // Reference: both models over the stream with whole logits and log_softmax.
  torch::NoGradGuard g;
  LstmLm qf = qm.folded;
  qf->eval();
  fl->eval();
  auto data = batchify(c.train, 3);
  auto sq = qf->init_state(3), sp = fl->init_state(3);
  double kl = 0, np = 0;
  int64_t agree = 0;
  for (int64_t i = 0; i < data.size(0) - 1; i += 7) {
    auto ch = get_batch(data, i, 7);
    const PairedNll d =
        paired_nll_dense(fl->forward(ch.data, sp), qf->forward(ch.data, sq), ch.targets);
    kl += d.kl, np += d.nll_p, agree += d.top1_agree;
  }
  EXPECT_GT(kl, 0);
  // Float logits: ~1e-8 nats per token of absolute error against the double reference (this
  // model's KL is tiny, ~1e-5 per token; real models' are 1e-3 and up).
  EXPECT_NEAR(r.mean_kl(), kl / static_cast<double>(r.tokens), 1e-7);
  EXPECT_NEAR(r.total_kl, kl, 1e-2 * kl);
  EXPECT_NEAR(r.reference_nll, np, 1e-6 * np);
  EXPECT_EQ(r.top1_agree, agree);

  // The model against itself: no divergence, full agreement.
  LstmLm same = fl;
  const EvalResult self = evaluate(same, c.train, EvalOptions{3, 7, {}, {}, fl});
  EXPECT_NEAR(self.mean_kl(), 0.0, 1e-6);
  EXPECT_EQ(self.top1_agree, self.tokens);
  EXPECT_NEAR(self.reference_nll, self.total_nll, 1e-9 * self.total_nll);

  // A reference of another vocabulary is refused.
  LstmLmConfig other = cfg;
  other.vocab = cfg.vocab + 1;
  EXPECT_THROW_MESSAGE(evaluate(qm.folded, c.train, EvalOptions{3, 7, {}, {}, LstmLm(other)}),
                       std::invalid_argument, "vocabulary");
}

TEST(Divergence, MeanBootstrapWorkedExampleAndRecordRoundTrip) {
  const MeanInterval m = mean_bootstrap({0.1, 0.3}, {1, 1}, 2000, kBootstrapSeed, 1);
  EXPECT_NEAR(m.mean, 0.2, 1e-12);
  EXPECT_NEAR(m.ci_low, 0.1, 1e-12);
  EXPECT_NEAR(m.ci_high, 0.3, 1e-12);
  EXPECT_EQ(mean_bootstrap({0.1, 0.3}, {1, 1}).resamples, 0);  // too few chunks
  EXPECT_THROW(mean_bootstrap({0.1}, {1, 1}), std::invalid_argument);

  Record r;
  r.config.method = Method::kClip;
  r.eval.tokens = 40;
  r.eval.loss = 1;
  r.eval.perplexity = std::exp(1.0);
  for (int i = 0; i < 20; ++i) {
    r.eval.chunk_nll.push_back(2.0);
    r.eval.chunk_tokens.push_back(2);
    r.eval.chunk_kl.push_back(0.01 * i);
    r.eval.chunk_top1.push_back(i % 3 == 0 ? 1 : 2);
  }
  r.kl_to_float = mean_bootstrap(r.eval.chunk_kl, r.eval.chunk_tokens);
  std::vector<double> t(r.eval.chunk_top1.begin(), r.eval.chunk_top1.end());
  r.top1_agreement = mean_bootstrap(t, r.eval.chunk_tokens);
  EXPECT_GT(r.kl_to_float.ci_high, r.kl_to_float.ci_low);
  const Record back = Record::from_json(r.to_json());
  ASSERT_TRUE(back.has_divergence());
  EXPECT_EQ(back.eval.chunk_kl, r.eval.chunk_kl);
  EXPECT_EQ(back.eval.chunk_top1, r.eval.chunk_top1);
  EXPECT_DOUBLE_EQ(back.kl_to_float.mean, r.kl_to_float.mean);
  EXPECT_DOUBLE_EQ(back.top1_agreement.ci_low, r.top1_agreement.ci_low);
  EXPECT_NEAR(back.eval.mean_kl(), r.kl_to_float.mean, 1e-12);
}
