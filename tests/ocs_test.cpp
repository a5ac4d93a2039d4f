// OCS: the worked example, function preservation, repeated splits, the grid-aware rule.
#include "quant/ocs.h"
#include "quant/uniform_quantizer.h"
#include "test_utils.h"

using namespace lmquant;

TEST(Ocs, WorkedExampleFromTheDesign) {
  auto w = torch::tensor({0.1f, 2.0f, -0.3f, 0.2f, -1.6f, 0.4f}).view({2, 3});
  auto plan = plan_ocs(w, 0.33);  // ceil(0.99) = 1 split
  ASSERT_EQ(plan.splits(), 1);
  EXPECT_EQ(plan.source, (std::vector<int64_t>{1}));
  auto ws = apply_ocs(w, plan);
  EXPECT_TRUE(torch::allclose(ws, torch::tensor({0.1f, 1.0f, -0.3f, 1.0f, 0.2f, -0.8f, 0.4f, -0.8f}).view({2, 4})));
  auto x = torch::tensor({0.5f, -1.5f, 2.0f});
  EXPECT_TRUE(torch::allclose(torch::mv(ws, expand_input(x, plan)), torch::mv(w, x)));
  EXPECT_TRUE(torch::allclose(fold_ocs(ws, plan), w));
}

TEST(Ocs, SplitCountAndRatioValidation) {
  EXPECT_EQ(ocs_split_count(0.0, 200), 0);
  EXPECT_EQ(ocs_split_count(0.01, 200), 2);
  // 0.07 * 100 = 7.000000000000001 in double: a plain ceil would give 8.
  ASSERT_GT(0.07 * 100, 7.0);
  EXPECT_EQ(ocs_split_count(0.07, 100), 7);
  EXPECT_EQ(ocs_split_count(0.1, 200), 20);
  EXPECT_EQ(ocs_split_count(0.001, 200), 1);
  EXPECT_EQ(ocs_split_count(1.0, 3), 3);
  EXPECT_THROW_MESSAGE(ocs_split_count(1.5, 3), std::invalid_argument, "must be in [0, 1]");
  EXPECT_THROW_MESSAGE(ocs_split_count(-0.1, 3), std::invalid_argument, "must be in [0, 1]");
}

TEST(Ocs, AColumnCanBeSplitAgainAndTheFunctionIsKept) {
  // Column 0 dominates: 8 -> 4 (+4) -> then the 4s again.
  auto w = torch::tensor({8.0f, 1.0f, 0.5f}).view({1, 3});
  auto plan = plan_ocs(w, 1.0);
  EXPECT_EQ(plan.split_from, (std::vector<int64_t>{0, 0, 3}));
  EXPECT_EQ(plan.source, (std::vector<int64_t>{0, 0, 0}));
  auto ws = apply_ocs(w, plan);
  EXPECT_TRUE(torch::allclose(ws, torch::tensor({2.0f, 1.0f, 0.5f, 2.0f, 2.0f, 2.0f}).view({1, 6})));
  torch::manual_seed(2);
  auto big = torch::randn({64, 40});
  big[3][7] = 9;
  auto p = plan_ocs(big, 0.1);
  auto bs = apply_ocs(big, p);
  EXPECT_LT(bs.abs().max().item<float>(), big.abs().max().item<float>());
  auto x = torch::randn({40});
  EXPECT_LT((torch::mv(bs, expand_input(x, p)) - torch::mv(big, x)).abs().max().item<float>(), 1e-5);
}

TEST(Ocs, GridAwareHalvesKeepTheRoundedSum) {
  // w/s = 3: plain halves round to 2 + 2 = 4 (half to even), grid-aware to 1 + 2 = 3.
  const float s = 0.5f;
  auto w = torch::tensor({1.5f, 0.1f}).view({1, 2});
  auto plan = plan_ocs(w, 0.5);
  UniformQuantizer q(8);
  auto step = torch::tensor(s);
  auto plain = q.codes(apply_ocs(w, plan), step);
  auto grid = q.codes(apply_ocs(w, plan, step), step);
  EXPECT_EQ(plain[0][0].item<int>() + plain[0][2].item<int>(), 4);
  EXPECT_EQ(grid[0][0].item<int>() + grid[0][2].item<int>(), 3);
  // Grid-aware splitting keeps the sum in real arithmetic too.
  EXPECT_TRUE(torch::allclose(fold_ocs(apply_ocs(w, plan, step), plan), w));
}

TEST(Ocs, ZeroRatioIsTheIdentity) {
  auto w = torch::randn({4, 5});
  auto plan = plan_ocs(w, 0.0);
  EXPECT_EQ(plan.splits(), 0);
  EXPECT_TRUE(torch::equal(apply_ocs(w, plan), w));
  EXPECT_TRUE(torch::equal(fold_ocs(w, plan), w));
}
