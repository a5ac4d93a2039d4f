// The vectorised NLL kernels against LibTorch's log_softmax and autograd.
#include "lm/nll.h"
#include "test_utils.h"

using namespace lmquant;

TEST(Nll, HandComputedExample) {
  auto z = torch::tensor({1.0f, 2.0f, 3.0f}).view({1, 3});
  EXPECT_NEAR(sum_nll(z, torch::tensor({2}, torch::kInt64)), std::log(std::exp(-2.0) + std::exp(-1.0) + 1.0), 1e-6);
}

TEST(Nll, MatchesLogSoftmaxOnWideRows) {
  torch::manual_seed(0);
  auto z = torch::randn({37, 5003}) * 6;
  z[3].fill_(0);       // constant row
  z[4][7] = 120;       // one dominant logit
  z[5].fill_(-100);    // very negative
  auto y = torch::randint(0, 5003, {37}, torch::kInt64);
  auto ref = -torch::log_softmax(z.to(torch::kDouble), 1).gather(1, y.view({-1, 1})).view({-1});
  auto got = row_nll(z, y);
  EXPECT_LT(((got - ref).abs() / ref.abs().clamp_min(1e-3)).max().item<double>(), 2e-6);
  EXPECT_NEAR(sum_nll(z, y), ref.sum().item<double>(), 1e-6 * ref.sum().item<double>());
}

TEST(Nll, FusedCrossEntropyGradientMatchesAutograd) {
  torch::manual_seed(1);
  auto z1 = (torch::randn({9, 301}) * 3).requires_grad_();
  auto z2 = z1.detach().clone().requires_grad_();
  auto y = torch::randint(0, 301, {9}, torch::kInt64);
  auto a = fused_cross_entropy(z1, y);
  auto b = torch::cross_entropy_loss(z2, y);
  EXPECT_NEAR(a.item<double>(), b.item<double>(), 1e-5);
  (a * 2).backward();
  (b * 2).backward();
  EXPECT_LT((z1.grad() - z2.grad()).abs().max().item<double>(), 1e-6);
}

TEST(Nll, OutOfRangeTargetIsAnError) {
  auto z = torch::zeros({1, 4});
  EXPECT_THROW(row_nll(z, torch::tensor({4}, torch::kInt64)), c10::Error);
}

TEST(Nll, DecoderInBlocksMatchesTheFullLogits) {
  // The header's example: h = [1], weight = [[1], [2], [3]], bias 0: z = [1, 2, 3], y = 2, in
  // blocks of 2 (and 1, and one block).
  auto h1 = torch::ones({1, 1}), w1 = torch::tensor({1.0f, 2.0f, 3.0f}).view({3, 1});
  auto b1 = torch::zeros({3}), y1 = torch::tensor({int64_t{2}});
  for (int64_t block : {1, 2, 3, 8}) EXPECT_NEAR(decoder_nll(h1, w1, b1, y1, block), 0.4076, 1e-4);
  torch::manual_seed(3);
  const int64_t N = 37, H = 16, V = 1003;  // V not a multiple of any block below
  auto h = torch::randn({N, H}), w = torch::randn({V, H}) * 0.5, b = torch::randn({V});
  auto y = torch::randint(0, V, {N}, torch::kLong);
  y[0] = 0, y[N - 1] = V - 1;  // first and last column
  const double ref =
      -torch::log_softmax(torch::addmm(b, h, w.t()).to(torch::kDouble), 1).gather(1, y.view({-1, 1})).sum().item<double>();
  for (int64_t block : {1, 7, 256, 1024, 4096})
    EXPECT_NEAR(decoder_nll(h, w, b, y, block), ref, 1e-5 * std::fabs(ref)) << "block " << block;
  EXPECT_THROW(decoder_nll(h, w, b, torch::full({N}, V, torch::kLong)), c10::Error);
}
