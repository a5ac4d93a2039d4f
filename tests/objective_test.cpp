// The objectives a matrix's rounding minimises (quant/objective.h): names, the feed Hessian, and
// the header's worked example computed.
#include "quant/objective.h"

#include "quant/gptq.h"
#include "test_utils.h"

using namespace lmquant;

TEST(Objective, NamesRoundTripAndUnknownNamesListTheValidOnes) {
  for (auto o : {Objective::kWeight, Objective::kInputs, Objective::kFeed, Objective::kFisher})
    EXPECT_EQ(parse_objective(to_string(o)), o);
  EXPECT_THROW_MESSAGE(parse_objective("logits"), std::invalid_argument,
                       "valid values: weight, inputs, feed, fisher");
  EXPECT_FALSE(compensated(Objective::kWeight));
  EXPECT_TRUE(compensated(Objective::kFeed));
}

TEST(Objective, FeedWorkedExample) {
  // W_ih = [[1, 1]]: H = W_ihᵀ W_ih = [[1, 1], [1, 1]]; one embedding row e = [0.4, 0.4], step 1.
  const auto w_ih = torch::tensor({{1.0f, 1.0f}});
  const auto h = feed_hessian(w_ih);
  EXPECT_TRUE(torch::equal(h, torch::tensor({{1.0, 1.0}, {1.0, 1.0}}, torch::kDouble)));
  const auto e = torch::tensor({{0.4f, 0.4f}});
  const auto step = torch::ones({1, 2});
  // Nearest: ê = [0, 0], ‖W_ih δ‖² = 0.8² = 0.64.
  const auto nearest = torch::zeros({1, 2});
  EXPECT_NEAR(quadratic_error((e - nearest)[0], h), 0.64, 1e-6);
  // GPTQ with λ = 0.01, natural order: column 0 → 0, w₁ ← 0.4 + 0.4/1.01 → 1: ê = [0, 1].
  GptqOptions o;
  o.damp = 0.01;
  o.order = GptqOrder::kNatural;
  const auto codes = gptq_codes(e, step, 7, h, o);
  EXPECT_EQ(codes[0][0].item<int>(), 0);
  EXPECT_EQ(codes[0][1].item<int>(), 1);
  const auto ehat = codes.to(torch::kFloat) * step;
  EXPECT_NEAR(quadratic_error((e - ehat)[0], h), 0.04, 1e-6);
  // Sixteen times less in what the row feeds, though its own squared error is larger.
  EXPECT_NEAR((e - ehat).pow(2).sum().item<double>(), 0.52, 1e-6);
  EXPECT_NEAR((e - nearest).pow(2).sum().item<double>(), 0.32, 1e-6);
}
