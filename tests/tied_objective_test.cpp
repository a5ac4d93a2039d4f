// The tied objective (quant/tied_objective.h): the header's worked example, the shared term in
// the per-row Hessians (rotated too), the sensitivity, the gradient moment's properties, and the
// tied matrix rounded against it on a tiny tied model.
#include "quant/tied_objective.h"

#include <cmath>
#include <set>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "lm/matrices.h"
#include "quant/gptq.h"
#include "quant/objective.h"
#include "quant/quantize_model.h"
#include "quant/rotation.h"
#include "quant/row_widths.h"
#include "test_utils.h"

using namespace lmquant;

TEST(TiedObjective, WorkedExampleOfTheHeader) {
  const auto f = torch::tensor({{2.0, 0.0}, {0.0, 1.0}}, torch::kDouble);
  const auto m = torch::tensor({{3.0, 1.0}, {1.0, 1.0}}, torch::kDouble);
  const auto h = f + 0.1 * m;
  EXPECT_TRUE(torch::allclose(h, torch::tensor({{2.3, 0.1}, {0.1, 1.1}}, torch::kDouble)));
  const auto d = torch::tensor({0.1, -0.2}, torch::kDouble);
  EXPECT_NEAR(0.5 * quadratic_error(d, h), 0.0315, 1e-12);
  EXPECT_NEAR(0.5 * quadratic_error(d, f), 0.03, 1e-12);
  EXPECT_NEAR(0.5 * 0.1 * quadratic_error(d, m), 0.0015, 1e-12);
}

TEST(TiedObjective, SharedTermIsAddedToEveryRowsHessianAndRotatesWithIt) {
  torch::manual_seed(3);
  const int64_t V = 7, n = 4, N = 30;
  const auto x = torch::randn({N, n}), w = torch::randn({V, n}), b = torch::randn({V});
  const DecoderFisher dec(x, w, b);
  const auto freq = torch::rand({V}, torch::kDouble);
  auto a = torch::randn({n, n}, torch::kDouble);
  const auto m = a.mm(a.t());
  const DecoderFisher tied = tied_fisher(dec, freq, m);
  const auto fd = dec.hessians(0, V), ft = tied.hessians(0, V);
  for (int64_t v = 0; v < V; ++v)
    EXPECT_TRUE(torch::allclose(ft[v], fd[v] + freq[v].item<double>() * m, 1e-12, 1e-12)) << v;
  const auto q = random_rotation(n, 5).to(torch::kDouble);
  const auto fr = tied.rotated(q).hessians(0, V);
  for (int64_t v = 0; v < V; ++v)
    EXPECT_TRUE(torch::allclose(fr[v], q.t().mm(ft[v]).mm(q), 1e-5, 1e-6)) << v;  // float h
  // The sensitivity: the decoder's part plus ½ f_v δᵀ M δ.
  const std::vector<torch::Tensor> errors = {torch::randn({V, n}) * 0.1f};
  const auto s = tied_sensitivity(errors, x, w, b, freq, m);
  const auto sd = fisher_sensitivity(errors, x, w, b);
  for (int64_t v = 0; v < V; ++v) {
    const auto d = errors[0][v].to(torch::kDouble);
    EXPECT_NEAR(s[0][v].item<double>(),
                sd[0][v].item<double>() + 0.5 * freq[v].item<double>() * quadratic_error(d, m),
                1e-12);
  }
  EXPECT_THROW(dec.with_shared_term(torch::ones({V + 1}), m), std::invalid_argument);
}

TEST(TiedObjective, RowsWithoutKeptPairsShareTheFactorisationOfTheirRatio) {
  // With 2 of 120 rows kept at each of 20 positions most rows have H_v = a_v H̄ + f_v M, a_v =
  // A_v / N: a positive multiple of H̄ + ρ_v M, ρ_v = f_v / a_v. family_keys bins ρ_v to powers
  // of 2^(1/16); the bin's matrix H̄ + ρ_bin M is within 2^(1/32) of ρ_v, and GPTQ with it gives
  // (nearly) the codes of the row's own Hessian, at (nearly) the same cost δᵀ H_v δ.
  torch::manual_seed(21);
  const int64_t N = 20, n = 6, V = 120;
  const auto h = torch::randn({N, n}), w = torch::randn({V, n}) * 2, b = torch::randn({V});
  auto freq = torch::rand({V}, torch::kDouble) * 0.02;
  freq[0] = 0.0;  // no embedding role: H̄ alone
  auto a = torch::randn({n, n}, torch::kDouble);
  const auto m = a.mm(a.t()) / n;
  const DecoderFisher f = DecoderFisher(h, w, b, 2).with_shared_term(freq, m);
  const auto keys = f.family_keys(0, V);
  const auto own = f.hessians(0, V);
  const auto hbar = f.mean_hessian();
  EXPECT_TRUE(torch::equal(f.family_hessian(1), m));
  int64_t binned = 0;
  std::set<int64_t> bins;
  for (int64_t v = 0; v < V; ++v) {
    const int64_t key = keys[v].item<int64_t>();
    if (key < 0) continue;
    if (v == 0) {
      EXPECT_EQ(key, 0);
      continue;
    }
    ASSERT_GE(key, 2) << v;
    ++binned, bins.insert(key);
    // a_v from H_v − f_v M = a_v H̄, then ρ_v = f_v / a_v.
    const auto rest = own[v] - freq[v].item<double>() * m;
    const double av = (rest * hbar).sum().item<double>() / (hbar * hbar).sum().item<double>();
    ASSERT_TRUE(torch::allclose(rest, av * hbar, 1e-9, 1e-12)) << v;
    const double rho = freq[v].item<double>() / av;
    const auto fam = f.family_hessian(key);
    const double rho_bin = ((fam - hbar) * m).sum().item<double>() / (m * m).sum().item<double>();
    EXPECT_TRUE(torch::allclose(fam, hbar + rho_bin * m, 1e-9, 1e-12)) << v;
    EXPECT_LE(std::abs(std::log(rho_bin / rho)), std::log(2.0) / 32 + 1e-12) << v;
  }
  ASSERT_GT(binned, 40);
  EXPECT_LT(static_cast<int64_t>(bins.size()), binned);  // rows share bins
  // GPTQ: the bin's factorisation against each row's own, 3 bits midrise.
  const GptqOptions o{0.01, GptqOrder::kDiagonal, 128, Grid::kMidrise};
  const std::vector<int32_t> qmax(n, 3);
  const auto step = (std::get<0>(w.abs().max(1, true)) / 3).expand_as(w).contiguous();
  const auto each = gptq_row_codes(w, step, qmax, gptq_row_factors(own, o), o.grid);
  int64_t same = 0;
  double cost_own = 0, cost_bin = 0;
  for (int64_t v = 1; v < V; ++v) {
    const int64_t key = keys[v].item<int64_t>();
    if (key < 2) continue;
    const auto c = gptq_row_codes(w.narrow(0, v, 1), step.narrow(0, v, 1), qmax,
                                  gptq_row_factors(f.family_hessian(key).unsqueeze(0), o), o.grid);
    same += torch::equal(c[0], each[v]);
    auto err = [&](const torch::Tensor& codes) {
      const auto d = (w[v] - codes.to(torch::kFloat) * step[v]).to(torch::kDouble);
      return d.dot(own[v].mv(d)).item<double>();
    };
    cost_own += err(each[v]), cost_bin += err(c[0]);
  }
  EXPECT_GE(same, binned * 9 / 10) << same << " of " << binned;
  EXPECT_LT(std::abs(cost_bin - cost_own), 0.01 * cost_own) << cost_bin << " vs " << cost_own;
}

TEST(TiedObjective, GradientMomentIsASeededPositiveSemidefiniteMean) {
  const Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LstmLm model = lmquant::test::tiny_lstm(corpus.vocab.size(), 9, /*tied=*/true);
  CalibrationOptions co;
  co.sequences = 6;
  const Calibration cal = make_calibration(corpus.train, co);
  const auto m = embedding_fisher_moment(model, cal, 1);
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{16, 16}));
  EXPECT_TRUE(torch::allclose(m, m.t()));
  EXPECT_GT(torch::linalg_eigvalsh(m).min().item<double>(), -1e-12);
  EXPECT_GT(m.trace().item<double>(), 0);
  EXPECT_TRUE(torch::equal(m, embedding_fisher_moment(model, cal, 1)));
  EXPECT_FALSE(torch::equal(m, embedding_fisher_moment(model, cal, 2)));
  // A decoder that ignores its input (zero weights; tied: the embedding too is zero, so every
  // input is the same) gives the same distribution everywhere: no gradient reaches x.
  {
    torch::NoGradGuard g;
    model->encoder.zero_();
  }
  EXPECT_EQ(embedding_fisher_moment(model, cal, 1).abs().max().item<double>(), 0.0);
}

TEST(TiedObjective, TiedRowsAreRoundedAgainstIt) {
  const Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  const LstmLm model = lmquant::test::tiny_lstm(corpus.vocab.size(), 4, /*tied=*/true);
  CalibrationOptions co;
  co.sequences = 64;
  const Calibration cal = make_calibration(corpus.train, co);
  QuantConfig q;
  q.bits = 3, q.granularity = Granularity::kRow, q.rounding = Rounding::kGptq;
  q.calib_sequences = 64;
  q.targets = parse_targets("embedding");  // the tied matrix alone: its objective is exact
  QuantConfig nearest = q;
  nearest.rounding = Rounding::kNearest;
  q.fisher_decoder = true;
  const auto t = quantize_model(model, q, &cal), n = quantize_model(model, nearest);
  EXPECT_EQ(t.matrices.front().objective, "tied");
  // Σ_v δ_vᵀ H_v δ_v with the tied Hessians: lower than nearest's.
  const auto name = std::string("embedding+decoder");
  const auto x = calibration_inputs(*LstmLm(model), cal, {name}).at(name);
  const DecoderFisher h = tied_fisher(DecoderFisher(x, model->encoder, model->decoder_bias),
                                      smoothed_frequency(cal.token_counts, model->config().vocab),
                                      embedding_fisher_moment(model, cal));
  const auto hs = h.hessians(0, model->config().vocab);
  auto cost = [&](const QuantizedModel& qm) {
    const auto d = (model->encoder - qm.folded->encoder).detach().to(torch::kDouble);
    return (d.unsqueeze(1).bmm(hs).bmm(d.unsqueeze(2))).sum().item<double>();
  };
  EXPECT_LT(cost(t), cost(n)) << "tied " << cost(t) << ", nearest " << cost(n);
}
