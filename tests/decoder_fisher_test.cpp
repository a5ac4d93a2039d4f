// The decoder's Fisher Hessians (quant/decoder_fisher.h): the header's worked example, the kept
// form against the dense definition, the rotation, and the rounding they drive lowering the
// second-order KL below rounding to nearest and below GPTQ on the logits.
#include "quant/decoder_fisher.h"

#include <cmath>

#include "quant/gptq.h"
#include "quant/uniform_quantizer.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

// F_v = (1/N) Σ_t p_tv (1 − p_tv) h_t h_tᵀ for every row, in double, from the definition.
torch::Tensor dense_fisher(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b) {
  auto hd = h.to(torch::kDouble);
  auto p = torch::softmax(hd.mm(w.to(torch::kDouble).t()) + b.to(torch::kDouble), 1);
  auto a = p * (1 - p);  // [N, V]
  return torch::einsum("tv,ti,tj->vij", {a, hd, hd}) / static_cast<double>(h.size(0));
}

}  // namespace

TEST(DecoderFisher, HeaderWorkedExample) {
  // n = 1, V = 3, N = 2, W = 0, b = [0, ln 2, ln 5], h = [1, 2]: F = [35, 60, 75]/128 exactly,
  // and with one kept row per position (row 2) the tail gives rows 0 and 1 the same.
  const auto h = torch::tensor({1.0f, 2.0f}).view({2, 1});
  const auto w = torch::zeros({3, 1});
  const auto b = torch::tensor({0.0f, std::log(2.0f), std::log(5.0f)});
  for (int64_t keep : {1, 2, 3, 256}) {
    const DecoderFisher f(h, w, b, keep);
    const auto F = f.hessians(0, 3);
    ASSERT_EQ(F.sizes(), (std::vector<int64_t>{3, 1, 1}));
    EXPECT_NEAR(F[0][0][0].item<double>(), 35.0 / 128, 1e-6) << "keep " << keep;
    EXPECT_NEAR(F[1][0][0].item<double>(), 60.0 / 128, 1e-6) << "keep " << keep;
    EXPECT_NEAR(F[2][0][0].item<double>(), 75.0 / 128, 1e-6) << "keep " << keep;
  }
  // Row 2 holds 15/34 of the mass (a = [7, 12, 15]/64).
  EXPECT_NEAR(DecoderFisher(h, w, b, 1).kept_share(), 15.0 / 34, 1e-6);
  EXPECT_NEAR(DecoderFisher(h, w, b, 3).kept_share(), 1.0, 1e-9);
}

TEST(DecoderFisher, KeepingEveryRowIsTheDefinitionAndFewerKeepsTheMass) {
  torch::manual_seed(11);
  const int64_t N = 60, n = 5, V = 9;
  auto h = torch::randn({N, n});
  auto w = torch::randn({V, n});
  auto b = torch::randn({V});
  const auto exact = dense_fisher(h, w, b);
  const DecoderFisher all(h, w, b, V);
  EXPECT_TRUE(torch::allclose(all.hessians(0, V), exact, 1e-5, 1e-7));
  EXPECT_TRUE(torch::allclose(all.hessians(3, 7), exact.narrow(0, 3, 4), 1e-5, 1e-7));
  // With 2 of 9 kept, the tail is exact when every h_t h_tᵀ equals H̄ (a constant input): each
  // row's mass A_v = Σ_t a_tv enters whole, kept or not.
  auto c = torch::ones({N, 1});
  const auto exact1 = dense_fisher(c, w.narrow(1, 0, 1), b);
  EXPECT_TRUE(torch::allclose(DecoderFisher(c, w.narrow(1, 0, 1), b, 2).hessians(0, V), exact1,
                              1e-5, 1e-7));
  const DecoderFisher two(h, w, b, 2);
  EXPECT_LT(two.kept_share(), 1.0);
  EXPECT_GT(two.kept_share(), 0.0);
  EXPECT_THROW(two.hessians(0, V + 1), std::invalid_argument);
  EXPECT_THROW(DecoderFisher(h, w, b, 0), std::invalid_argument);
  EXPECT_THROW(DecoderFisher(h, w.narrow(1, 0, 4), b), std::invalid_argument);
}

TEST(DecoderFisher, RotatedIsQtFQ) {
  torch::manual_seed(12);
  const int64_t N = 40, n = 4, V = 6;
  auto h = torch::randn({N, n});
  auto w = torch::randn({V, n});
  auto b = torch::randn({V});
  auto q = std::get<0>(torch::linalg_qr(torch::randn({n, n}, torch::kDouble)));
  for (int64_t keep : {int64_t{2}, V}) {
    const DecoderFisher f(h, w, b, keep);
    const auto F = f.hessians(0, V);
    const auto Fq = f.rotated(q).hessians(0, V);
    EXPECT_TRUE(torch::allclose(Fq, q.t().matmul(F).matmul(q), 1e-4, 1e-6)) << "keep " << keep;
  }
}

TEST(DecoderFisher, RoundingRowsWithTheirFisherLowersTheSecondOrderKl) {
  // A decoder whose rows matter at different positions: the Fisher-compensated codes leave a
  // smaller Σ_v δ_vᵀ F_v δ_v (the second-order KL, dense F) than rounding to nearest and than GPTQ
  // with the logits' shared Hessian, and a smaller mean KL(p ‖ p̂) measured directly.
  torch::manual_seed(13);
  const int64_t N = 1000, n = 24, V = 48;
  auto h = torch::randn({N, n}).mm(torch::randn({n, n}) * 0.4 + torch::eye(n));
  auto w = torch::randn({V, n}) * 2;  // peaked softmax: each row plausible at some positions
  auto b = torch::randn({V});
  const UniformQuantizer q(3, Grid::kMidrise);
  const auto s = (std::get<0>(w.abs().max(1, true)) / q.qmax()).expand_as(w).contiguous();
  const GptqOptions o{0.01, GptqOrder::kDiagonal, 128, Grid::kMidrise};
  const auto exact = dense_fisher(h, w, b);
  const DecoderFisher f(h, w, b, 16);  // a third of the rows kept per position
  auto fisher =
      q.dequantize(gptq_row_codes(w, s, std::vector<int32_t>(n, q.qmax()), f.hessians(0, V), o), s);
  auto nearest = q.dequantize(q.codes(w, s), s);
  auto logits = q.dequantize(gptq_codes(w, s, q.qmax(), gptq_hessian(h), o), s);
  auto second_order = [&](const torch::Tensor& wq) {
    auto d = (w - wq).to(torch::kDouble).unsqueeze(2);  // [V, n, 1]
    return (d.transpose(1, 2).bmm(exact).bmm(d)).sum().item<double>() / 2;
  };
  auto kl = [&](const torch::Tensor& wq) {
    auto lp = torch::log_softmax(h.mm(w.t()) + b, 1).to(torch::kDouble);
    auto lq = torch::log_softmax(h.mm(wq.t()) + b, 1).to(torch::kDouble);
    return (lp.exp() * (lp - lq)).sum(1).mean().item<double>();
  };
  EXPECT_LT(second_order(fisher), 0.9 * second_order(nearest));
  EXPECT_LT(second_order(fisher), second_order(logits));
  EXPECT_LT(kl(fisher), kl(nearest));
  EXPECT_LT(kl(fisher), kl(logits));
}

TEST(DecoderFisher, RowsWithoutKeptPairsShareOneFactorisationOfTheMean) {
  // With 2 of 100 rows kept at each of 20 positions most rows have F_v = (A_v / N) H̄ only:
  // family_keys puts them in family 0; GPTQ with one factorisation of H̄ gives them the codes
  // their own F_v gives (GPTQ ignores a Hessian's scale), and rows listed by index are the
  // range's rows.
  torch::manual_seed(14);
  const int64_t N = 20, n = 6, V = 100;  // at most 40 rows kept
  auto h = torch::randn({N, n});
  auto w = torch::randn({V, n}) * 2;
  auto b = torch::randn({V});
  const DecoderFisher f(h, w, b, 2);
  const auto keys = f.family_keys(0, V);
  EXPECT_TRUE(((keys == 0) | (keys == -1)).all().item<bool>());  // no shared term: one family
  const auto idx = (keys == 0).nonzero().view({-1});
  EXPECT_TRUE(torch::equal(f.family_hessian(0), f.mean_hessian()));
  ASSERT_GT(idx.numel(), 5);
  ASSERT_LT(idx.numel(), V);
  const auto own = f.hessians(idx);
  EXPECT_TRUE(torch::allclose(own, f.hessians(0, V).index_select(0, idx), 1e-12, 0));
  for (int64_t i = 0; i < idx.numel(); ++i) {  // each a positive multiple of H̄
    const auto r = own[i] / f.mean_hessian();
    EXPECT_GT(r.min().item<double>(), 0);
    EXPECT_TRUE(torch::allclose(r, r.mean().expand_as(r), 1e-9, 0));
  }
  const UniformQuantizer q(3, Grid::kMidrise);
  const auto ws = w.index_select(0, idx);
  const auto s = (std::get<0>(ws.abs().max(1, true)) / q.qmax()).expand_as(ws).contiguous();
  const GptqOptions o{0.01, GptqOrder::kDiagonal, 128, Grid::kMidrise};
  const std::vector<int32_t> qmax(n, q.qmax());
  const auto each = gptq_row_codes(ws, s, qmax, gptq_row_factors(own, o), o.grid);
  const auto shared =
      gptq_row_codes(ws, s, qmax, gptq_row_factors(f.mean_hessian().unsqueeze(0), o), o.grid);
  EXPECT_TRUE(torch::equal(each, shared));
  EXPECT_THROW(f.hessians(torch::tensor({int64_t{V}})), std::invalid_argument);
  EXPECT_THROW(f.family_keys(0, V + 1), std::invalid_argument);
  EXPECT_THROW(f.family_hessian(1), std::invalid_argument);  // no shared term, no family 1
}
