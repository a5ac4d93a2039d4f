// CUDA checks (skipped without a CUDA LibTorch and a GPU): the same model on CPU and GPU agrees.
#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "lm/evaluate.h"
#include "quant/quantize_model.h"
#include "test_utils.h"

using namespace lmquant;

#define LMQUANT_REQUIRE_CUDA()                                                              \
  if (!torch::cuda::is_available())                                                         \
  GTEST_SKIP() << "no CUDA device (Debian's LibTorch is CPU-only; tools/gpu_check.sh builds " \
                  "against a CUDA LibTorch)"

namespace {
LstmLm model_for(int64_t vocab) {
  torch::manual_seed(8);
  LstmLmConfig c;
  c.vocab = vocab;
  c.emb = c.hidden = 32;
  LstmLm m(c);
  m->eval();
  return m;
}
}  // namespace

TEST(Gpu, ForwardAndPerplexityAgreeWithCpu) {
  LMQUANT_REQUIRE_CUDA();
  Corpus c = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LstmLm cpu = model_for(c.vocab.size());
  LstmLm gpu(cpu->clone_model());
  gpu->to(torch::kCUDA);
  torch::NoGradGuard g;
  auto tokens = c.train.narrow(0, 0, 40).view({10, 4});
  auto s1 = cpu->init_state(4), s2 = gpu->init_state(4);
  auto a = cpu->forward(tokens, s1), b = gpu->forward(tokens.cuda(), s2).cpu();
  EXPECT_LT(((a - b).abs() / a.abs().clamp_min(1e-3)).max().item<double>(), 1e-4);
  const double p1 = evaluate(cpu, c.train, {4, 7, {}}).perplexity;
  const double p2 = evaluate(gpu, c.train, {4, 7, {}}).perplexity;
  EXPECT_NEAR(p1, p2, 1e-4 * p1);
}

TEST(Gpu, QuantizedWeightsAreIdenticalOnBothDevices) {
  LMQUANT_REQUIRE_CUDA();
  LstmLm cpu = model_for(50);
  LstmLm gpu(cpu->clone_model());
  gpu->to(torch::kCUDA);
  QuantConfig q;
  q.method = Method::kOcs;
  q.expand_ratio = 0.1;
  q.clip = ClipRule::parse("mse");
  q.build_expanded = true;
  auto a = quantize_model(cpu, q), b = quantize_model(gpu, q);
  auto wa = a.folded->named_weights(), wb = b.folded->named_weights();
  for (size_t i = 0; i < wa.size(); ++i)
    EXPECT_TRUE(torch::equal(wa[i].second, wb[i].second.cpu())) << wa[i].first;
  EXPECT_EQ(b.expanded->device().type(), torch::kCUDA);
  EXPECT_EQ(b.expanded->expansion.decoder_idx.device().type(), torch::kCUDA);
}
