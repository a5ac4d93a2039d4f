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
