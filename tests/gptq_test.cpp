// Error-compensating rounding (quant/gptq.h): the update formula by hand, H = I is rounding to
// nearest, the fast blocked Cholesky form against the plain OBS reference, lower output error
// than rounding to nearest, dead and duplicated inputs.
#include "quant/gptq.h"

#include "quant/uniform_quantizer.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

torch::Tensor output_error(const torch::Tensor& w, const torch::Tensor& w_hat,
                           const torch::Tensor& x) {
  return (w.to(torch::kDouble) - w_hat.to(torch::kDouble)).mm(x.to(torch::kDouble).t()).norm();
}

// A step per weight from max|w| per row at `bits`.
torch::Tensor row_steps(const torch::Tensor& w, int bits) {
  const UniformQuantizer q(bits);
  return (std::get<0>(w.abs().max(1, true)) / q.qmax()).expand_as(w).contiguous();
}

}  // namespace

TEST(Gptq, HeaderExampleTwoColumns) {
  // quant/gptq.h: H = [[1, .5], [.5, 1]], w = [0.4, 0.4], step 1 -> [0, 1] (nearest: [0, 0]).
  auto h = torch::tensor({1.0, 0.5, 0.5, 1.0}, torch::kDouble).view({2, 2});
  auto w = torch::tensor({0.4f, 0.4f}).view({1, 2});
  auto s = torch::ones({1, 2});
  GptqOptions o;
  o.damp = 0;
  auto c = gptq_codes(w, s, 7, h, o);
  EXPECT_EQ(c[0][0].item<int>(), 0);
  EXPECT_EQ(c[0][1].item<int>(), 1);
}

TEST(Gptq, UpdateFormulaOnAThreeByThreeHandExample) {
  // Chosen through its factor: U = [[1, -.5, 0], [0, 1, -.5], [0, 0, 1]], H⁻¹ = UᵀU, so
  // H = U⁻¹U⁻ᵀ with U⁻¹ = [[1, .5, .25], [0, 1, .5], [0, 0, 1]]:
  //   H = [[1.3125, .625, .25], [.625, 1.25, .5], [.25, .5, 1]].
  // w = [0.4, 0.35, 0.3], step 1:
  //   column 0: q = 0, e = 0.4 / U00 = 0.4;  w1 = 0.35 − 0.4·(−.5) = 0.55;  w2 = 0.3 − 0.4·0 = 0.3
  //   column 1: q = 1, e = (0.55 − 1) / 1 = −0.45;  w2 = 0.3 − (−0.45)·(−.5) = 0.075
  //   column 2: q = 0.
  // Output error (w − ŵ)ᵀH(w − ŵ): [.4, −.65, .3] -> 0.368125; nearest's [.4, .35, .3] -> 0.793125.
  auto h =
      torch::tensor({1.3125, .625, .25, .625, 1.25, .5, .25, .5, 1.0}, torch::kDouble).view({3, 3});
  auto w = torch::tensor({0.4f, 0.35f, 0.3f}).view({1, 3});
  auto s = torch::ones({1, 3});
  GptqOptions o;
  o.damp = 0;
  for (int64_t block : {1, 2, 128}) {
    o.block = block;
    auto c = gptq_codes(w, s, 7, h, o);
    EXPECT_EQ(c[0][0].item<int>(), 0) << "block " << block;
    EXPECT_EQ(c[0][1].item<int>(), 1) << "block " << block;
    EXPECT_EQ(c[0][2].item<int>(), 0) << "block " << block;
  }
  auto e = (w.to(torch::kDouble) - torch::tensor({0.0, 1.0, 0.0}, torch::kDouble).view({1, 3}));
  EXPECT_NEAR(e.mm(h).mm(e.t()).item<double>(), 0.368125, 1e-7);
  auto en = w.to(torch::kDouble);
  EXPECT_NEAR(en.mm(h).mm(en.t()).item<double>(), 0.793125, 1e-7);
  EXPECT_TRUE(torch::equal(reference_gptq_codes(w, s, 7, h, o), gptq_codes(w, s, 7, h, o)));
}

TEST(Gptq, IdentityHessianIsRoundToNearest) {
  torch::manual_seed(3);
  auto w = torch::randn({7, 19});
  auto s = row_steps(w, 3);
  const UniformQuantizer q(3);
  auto h = torch::eye(19, torch::kDouble);
  for (auto order : {GptqOrder::kNatural, GptqOrder::kDiagonal})
    EXPECT_TRUE(torch::equal(gptq_codes(w, s, q.qmax(), h, {0.01, order, 4}), q.codes(w, s)));
}

TEST(Gptq, BlockedCholeskyFormEqualsTheObsReference) {
  torch::manual_seed(4);
  auto x = torch::randn({300, 23}).mm(torch::randn({23, 23}));  // correlated inputs
  x.select(1, 5).zero_();                                       // a dead input
  auto h = gptq_hessian(x);
  auto w = torch::randn({9, 23});
  auto s = row_steps(w, 3);
  for (auto order : {GptqOrder::kNatural, GptqOrder::kDiagonal})
    for (int64_t block : {1, 4, 128}) {
      const GptqOptions o{0.01, order, block};
      EXPECT_TRUE(torch::equal(gptq_codes(w, s, 3, h, o), reference_gptq_codes(w, s, 3, h, o)))
          << to_string(order) << " block " << block;
    }
}

TEST(Gptq, LowersTheOutputErrorOfALeastSquaresProblem) {
  torch::manual_seed(5);
  auto x = torch::randn({512, 32}).mm(torch::randn({32, 32}) * 0.3 + torch::eye(32));
  auto w = torch::randn({16, 32});
  const UniformQuantizer q(3);
  auto s = row_steps(w, 3);
  auto rtn = q.dequantize(q.codes(w, s), s);
  for (auto order : {GptqOrder::kNatural, GptqOrder::kDiagonal}) {
    auto g = q.dequantize(gptq_codes(w, s, q.qmax(), gptq_hessian(x), {0.01, order, 128}), s);
    const double eg = output_error(w, g, x).item<double>(),
                 er = output_error(w, rtn, x).item<double>();
    EXPECT_LT(eg, 0.9 * er) << to_string(order) << ": gptq " << eg << " vs nearest " << er;
  }
}

TEST(Gptq, DeadInputsAreRoundedToNearestAndLeaveTheRestAlone) {
  torch::manual_seed(6);
  auto x = torch::randn({200, 6});
  x.select(1, 2).zero_();
  auto w = torch::randn({4, 6});
  const UniformQuantizer q(4);
  auto s = row_steps(w, 4);
  auto c = gptq_codes(w, s, q.qmax(), gptq_hessian(x));
  EXPECT_TRUE(torch::equal(c.select(1, 2), q.codes(w, s).select(1, 2)));
  // The same problem without the dead column gives the same codes for the others.
  auto keep = torch::tensor({0, 1, 3, 4, 5}, torch::kLong);
  auto c5 = gptq_codes(w.index_select(1, keep), s.index_select(1, keep), q.qmax(),
                       gptq_hessian(x.index_select(1, keep)));
  EXPECT_TRUE(torch::equal(c.index_select(1, keep), c5));
}

TEST(Gptq, DuplicatedInputsAreHandledByTheDampening) {
  // OCS duplicates inputs: x' = [x ; x[:, idx]] makes H singular; the factorisation must still
  // work, and the compensation must still beat rounding to nearest on the widened problem.
  torch::manual_seed(7);
  auto x = torch::randn({400, 10});
  auto idx = torch::tensor({3, 3, 7}, torch::kLong);
  auto xw = torch::cat({x, x.index_select(1, idx)}, 1);
  auto w = torch::randn({64, 13});
  const UniformQuantizer q(4);
  auto s = row_steps(w, 4);
  auto h = gptq_hessian(xw);
  EXPECT_NO_THROW(gptq_codes(w, s, q.qmax(), h));
  auto g = q.dequantize(gptq_codes(w, s, q.qmax(), h), s);
  EXPECT_LT(output_error(w, g, xw).item<double>(),
            output_error(w, q.dequantize(q.codes(w, s), s), xw).item<double>());
  EXPECT_TRUE(torch::isfinite(g).all().item<bool>());
}

TEST(Gptq, PerColumnBitWidthsAndBadShapes) {
  torch::manual_seed(8);
  auto w = torch::randn({3, 4}) * 10;
  auto s = torch::ones({3, 4});
  auto c = gptq_codes(w, s, std::vector<int32_t>{1, 1, 7, 7}, torch::eye(4, torch::kDouble));
  EXPECT_LE(c.narrow(1, 0, 2).abs().max().item<int>(), 1);
  EXPECT_LE(c.narrow(1, 2, 2).abs().max().item<int>(), 7);
  EXPECT_THROW_MESSAGE(gptq_codes(w, s, 7, torch::eye(3, torch::kDouble)), std::invalid_argument,
                       "H [n, n]");
  EXPECT_THROW_MESSAGE(parse_gptq_order("random"), std::invalid_argument, "natural, diag");
}

TEST(Gptq, MidriseGridEqualsTheReferenceAndStaysOdd) {
  torch::manual_seed(14);
  auto x = torch::randn({200, 17}).mm(torch::randn({17, 17}));
  auto h = gptq_hessian(x);
  auto w = torch::randn({6, 17});
  const UniformQuantizer q(2, Grid::kMidrise);
  auto s = (std::get<0>(w.abs().max(1, true)) / q.qmax()).expand_as(w).contiguous();
  GptqOptions o;
  o.grid = Grid::kMidrise;
  o.order = GptqOrder::kDiagonal;
  const auto fast = gptq_codes(w, s, q.qmax(), h, o);
  EXPECT_TRUE(torch::equal(fast, reference_gptq_codes(w, s, q.qmax(), h, o)));
  EXPECT_TRUE((fast.remainder(2) != 0).all().item<bool>());
  // Compensation lowers the output error against midrise rounding to nearest.
  const auto nearest = q.codes(w, s);
  EXPECT_LT(output_error(w, fast.to(torch::kFloat) * s, x).item<double>(),
            output_error(w, nearest.to(torch::kFloat) * s, x).item<double>());
}

TEST(Gptq, AHessianPerRowGivesEachRowTheCodesOfItsOwnHessian) {
  // gptq_row_codes: row r compensated with H_r equals the one-Hessian form (and the OBS
  // reference) run on row r alone with H_r; dead inputs and both orders, midtread and midrise.
  torch::manual_seed(9);
  const int64_t rows = 7, n = 19;
  auto w = torch::randn({rows, n});
  std::vector<torch::Tensor> hs;
  for (int64_t r = 0; r < rows; ++r) {
    auto x = torch::randn({100, n}).mm(torch::randn({n, n}) * 0.5 + torch::eye(n));
    if (r == 2) x.select(1, 4).zero_();  // a dead input in one row's Hessian only
    hs.push_back(gptq_hessian(x));
  }
  const auto h = torch::stack(hs);
  auto s = row_steps(w, 3);
  for (auto grid : {Grid::kMidtread, Grid::kMidrise})
    for (auto order : {GptqOrder::kNatural, GptqOrder::kDiagonal}) {
      const GptqOptions o{0.01, order, 128, grid};
      const int32_t qmax = UniformQuantizer(3, grid).qmax();
      auto c = gptq_row_codes(w, s, std::vector<int32_t>(n, qmax), h, o);
      for (int64_t r = 0; r < rows; ++r) {
        const auto wr = w.narrow(0, r, 1), sr = s.narrow(0, r, 1);
        EXPECT_TRUE(torch::equal(c.narrow(0, r, 1), gptq_codes(wr, sr, qmax, hs[r], o)))
            << "row " << r << " " << to_string(order);
        EXPECT_TRUE(torch::equal(c.narrow(0, r, 1), reference_gptq_codes(wr, sr, qmax, hs[r], o)))
            << "row " << r << " " << to_string(order);
      }
    }
  // One shared Hessian expanded to every row is the one-Hessian form.
  auto c1 = gptq_row_codes(w, s, std::vector<int32_t>(n, 3), hs[0].expand({rows, n, n}));
  EXPECT_TRUE(torch::equal(c1, gptq_codes(w, s, 3, hs[0])));
  EXPECT_THROW(gptq_row_codes(w, s, std::vector<int32_t>(n, 3), hs[0]), std::invalid_argument);
  EXPECT_THROW(gptq_row_codes(w, s, std::vector<int32_t>(n - 1, 3), h), std::invalid_argument);
}
