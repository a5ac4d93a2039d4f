// The uniform quantizer: worked example, fast path vs the plain reference, error bounds per bit
// width, all-zero and constant rows.
#include "quant/uniform_quantizer.h"

#include "test_utils.h"

using namespace lmquant;

TEST(UniformQuantizer, WorkedExampleFromTheHeader) {
  auto got = reference_fake_quantize({0.2f, -0.8f, 0.75f, 1.9f}, 1.5f, 3);
  EXPECT_EQ(got, (std::vector<float>{0.0f, -1.0f, 1.0f, 1.5f}));
  UniformQuantizer q(3);
  auto codes =
      q.codes(torch::tensor({0.2f, -0.8f, 0.75f, 1.9f}).view({1, 4}), torch::tensor({0.5f}));
  EXPECT_TRUE(torch::equal(codes, torch::tensor({0, -2, 2, 3}, torch::kShort).view({1, 4})));
}

TEST(UniformQuantizer, ValidatesBits) {
  EXPECT_THROW_MESSAGE(UniformQuantizer(1), std::invalid_argument, "bits must be in 2..16, got 1");
  EXPECT_THROW_MESSAGE(UniformQuantizer(17), std::invalid_argument, "got 17");
  EXPECT_EQ(UniformQuantizer(2).qmax(), 1);
  EXPECT_EQ(UniformQuantizer(8).qmax(), 127);
  EXPECT_EQ(UniformQuantizer(16).qmax(), 32767);
}

TEST(UniformQuantizer, FastPathEqualsReferenceAndErrorIsBoundedPerBitWidth) {
  torch::manual_seed(0);
  auto w = torch::randn({7, 301});
  for (int bits = 2; bits <= 16; ++bits) {
    UniformQuantizer q(bits);
    const float alpha = 2.0f;  // clips the tails
    const float s = q.step(alpha);
    auto codes = q.codes(w, torch::full({7}, s));
    auto deq = q.dequantize(codes, torch::full({7}, s));
    auto wa = w.accessor<float, 2>();
    auto ca = codes.accessor<int16_t, 2>();
    for (int64_t r = 0; r < 7; ++r)
      for (int64_t c = 0; c < 301; ++c)
        ASSERT_EQ(ca[r][c], reference_code(wa[r][c], s, q.qmax())) << bits << " bits";
    // Inside [-α, α] the error is at most s/2; outside it is |w| - α.
    auto inside = w.abs() <= alpha;
    auto err = (w - deq).abs();
    // s/2 plus float rounding of q·s (|w| <= 2: a few ulps of 2, ~1e-6).
    EXPECT_LE(err.masked_select(inside).max().item<float>(), s / 2 + 1e-6f) << bits;
    auto outside_err = err.masked_select(~inside) - (w.abs().masked_select(~inside) - alpha);
    EXPECT_LE(outside_err.abs().max().item<float>(), 1e-5f) << bits;
  }
}

TEST(UniformQuantizer, AllZeroAndConstantRows) {
  UniformQuantizer q(4);
  auto w = torch::stack({torch::zeros({5}), torch::full({5}, 0.3f), torch::full({5}, -2.0f)});
  auto step = torch::tensor({0.0f, q.step(0.3f), q.step(2.0f)});
  auto deq = q.dequantize(q.codes(w, step), step);
  EXPECT_TRUE(torch::equal(deq[0], torch::zeros({5})));
  EXPECT_TRUE(torch::allclose(deq[1], w[1]));  // the max of a constant row is on the grid
  EXPECT_TRUE(torch::allclose(deq[2], w[2]));
  EXPECT_FALSE(torch::isnan(deq).any().item<bool>());
}

TEST(UniformQuantizer, MidriseGridWorkedExampleAndOddCodes) {
  // uniform_quantizer.h: b = 2, α = 1.5 → s = 0.5, w = [0.2, −0.8, 1.2, 3.0] → q = [1, −1, 3, 3].
  const UniformQuantizer q(2, Grid::kMidrise);
  EXPECT_EQ(q.qmax(), 3);
  EXPECT_FLOAT_EQ(q.step(1.5f), 0.5f);
  auto w = torch::tensor({0.2f, -0.8f, 1.2f, 3.0f}).view({1, 4});
  auto c = q.codes(w, torch::tensor({0.5f}));
  EXPECT_TRUE(torch::equal(c, torch::tensor({1, -1, 3, 3}, torch::kShort).view({1, 4})));
  EXPECT_EQ(reference_fake_quantize({0.2f, -0.8f, 1.2f, 3.0f}, 1.5f, 2, Grid::kMidrise),
            (std::vector<float>{0.5f, -0.5f, 1.5f, 1.5f}));
  // Every code is odd, all 2^b levels are used, and the fast path equals the reference.
  torch::manual_seed(2);
  for (int bits = 2; bits <= 7; ++bits) {
    const UniformQuantizer m(bits, Grid::kMidrise);
    auto x = torch::randn({5, 301}) * 2;
    auto s = (std::get<0>(x.abs().max(1)) / m.qmax()).contiguous();
    auto codes = m.codes(x, s);
    EXPECT_TRUE((codes.remainder(2) != 0).all().item<bool>()) << bits;
    if (bits <= 4)  // 1,505 Gaussian draws reach every level of a narrow grid
      EXPECT_EQ(std::get<0>(torch::_unique(codes)).numel(), int64_t{1} << bits) << bits;
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t j = 0; j < 301; j += 7)
        EXPECT_EQ(codes[r][j].item<int>(), reference_code(x[r][j].item<float>(), s[r].item<float>(),
                                                          m.qmax(), Grid::kMidrise));
    // Error at most half a level spacing (s) inside the range.
    EXPECT_LE((m.dequantize(codes, s) - x).abs().max().item<float>(),
              s.max().item<float>() * 1.0001f);
  }
  // A zero group (s = 0) gets code 1 (ŵ = 0); widths over 7 bits are refused.
  EXPECT_EQ(UniformQuantizer(3, Grid::kMidrise)
                .codes(torch::zeros({1, 3}), torch::zeros({1}))
                .sum()
                .item<int>(),
            3);
  EXPECT_THROW_MESSAGE(UniformQuantizer(8, Grid::kMidrise), std::invalid_argument, "1..7");
  // One bit: ±α (a sign per weight).
  const UniformQuantizer one(1, Grid::kMidrise);
  EXPECT_EQ(one.qmax(), 1);
  EXPECT_TRUE(torch::equal(one.codes(torch::tensor({{-0.3f, 0.0f, 2.0f}}), torch::tensor({0.5f})),
                           torch::tensor({{-1, 1, 1}}, torch::kShort)));
  EXPECT_THROW_MESSAGE(UniformQuantizer(1), std::invalid_argument, "2..16");
  EXPECT_THROW_MESSAGE(parse_grid("nf4"), std::invalid_argument, "midtread, midrise");
}
