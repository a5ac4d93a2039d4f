// The LSTM LM: explicit-weights path vs LibTorch's fused LSTM, and expanded (OCS-shaped) inputs.
#include "lm/lstm_lm.h"
#include "test_utils.h"

using namespace lmquant;
using lmquant::test::max_rel_diff;

namespace {

LstmLm tiny_model(bool tied = false, int64_t layers = 2) {
  torch::manual_seed(3);
  LstmLmConfig c;
  c.vocab = 17;
  c.emb = c.hidden = 8;
  c.layers = layers;
  c.dropout = 0;
  c.tied = tied;
  LstmLm m(c);
  m->eval();
  return m;
}

}  // namespace

TEST(LstmLm, ExplicitPathMatchesFusedLstm) {
  for (bool tied : {false, true}) {
    LstmLm m = tiny_model(tied, 3);
    torch::NoGradGuard g;
    auto tokens = torch::randint(0, 17, {6, 3}, torch::kInt64);
    auto s1 = m->init_state(3), s2 = m->init_state(3);
    auto fused = m->forward(tokens, s1);
    m->force_explicit = true;
    auto expl = m->forward(tokens, s2);
    EXPECT_LT((fused - expl).abs().max().item<double>(), 1e-5);
    EXPECT_LT((s1.h - s2.h).abs().max().item<double>(), 1e-5);
    EXPECT_LT((s1.c - s2.c).abs().max().item<double>(), 1e-5);
  }
}

TEST(LstmLm, ZeroExtraColumnsChangeNothing) {
  LstmLm m = tiny_model();
  torch::NoGradGuard g;
  auto tokens = torch::randint(0, 17, {5, 2}, torch::kInt64);
  auto s1 = m->init_state(2), s2 = m->init_state(2);
  auto plain = m->forward(tokens, s1);
  auto empty_idx = torch::empty({0}, torch::kInt64);
  m->expansion.input_idx = {empty_idx, empty_idx};
  m->expansion.recurrent_idx = {empty_idx, empty_idx};
  m->expansion.decoder_idx = empty_idx;
  EXPECT_FALSE(m->expansion.empty());
  auto expanded = m->forward(tokens, s2);
  EXPECT_LT((plain - expanded).abs().max().item<double>(), 1e-5);
}

TEST(LstmLm, DuplicatedHalvedColumnsPreserveTheFunction) {
  // Split column 3 of W_hh l0 and column 5 of the decoder: halve it, append the half, duplicate
  // the activation. W'[h; h[idx]] = W h.
  LstmLm m = tiny_model();
  torch::NoGradGuard g;
  auto tokens = torch::randint(0, 17, {7, 2}, torch::kInt64);
  auto s1 = m->init_state(2), s2 = m->init_state(2);
  auto plain = m->forward(tokens, s1);
  auto split = [](const torch::Tensor& w, int64_t j) {
    auto half = w.select(1, j).clone() / 2;
    auto out = torch::cat({w, half.unsqueeze(1)}, 1);
    out.select(1, j).copy_(half);
    return out;
  };
  m->w_hh[0].set_data(split(m->w_hh[0], 3));
  m->decoder_weight.set_data(split(m->decoder_weight, 5));
  m->w_ih[1].set_data(split(m->w_ih[1], 0));
  auto idx = [](int64_t j) { return torch::tensor({j}, torch::kInt64); };
  m->expansion.recurrent_idx = {idx(3), torch::Tensor()};
  m->expansion.input_idx = {torch::Tensor(), idx(0)};
  m->expansion.decoder_idx = idx(5);
  auto expanded = m->forward(tokens, s2);
  EXPECT_LT((plain - expanded).abs().max().item<double>(), 1e-5);
}

TEST(LstmLm, WidthMismatchIsAnError) {
  LstmLm m = tiny_model();
  m->w_ih[0].set_data(torch::zeros({32, 9}));
  m->expansion.input_idx = {torch::empty({0}, torch::kInt64), torch::Tensor()};
  auto s = m->init_state(1);
  EXPECT_THROW_MESSAGE(m->forward(torch::zeros({2, 1}, torch::kInt64), s), std::invalid_argument,
                       "does not match W_ih");
}

TEST(LstmLm, ConfigValidation) {
  LstmLmConfig c;
  c.vocab = 10;
  c.emb = 4;
  c.hidden = 5;
  c.tied = true;
  EXPECT_THROW_MESSAGE(c.validate(), std::invalid_argument, "tied weights need emb == hidden");
  c.tied = false;
  c.dropout = 1.5;
  EXPECT_THROW_MESSAGE(c.validate(), std::invalid_argument, "dropout");
  EXPECT_THROW_MESSAGE(parse_device("tpu"), std::invalid_argument, "auto, cpu, cuda");
}

TEST(LstmLm, CloneIsDeep) {
  LstmLm m = tiny_model();
  auto c = m->clone_model();
  torch::NoGradGuard g;
  c->w_hh[0].add_(1);
  EXPECT_FALSE(torch::equal(c->w_hh[0], m->w_hh[0]));
  EXPECT_TRUE(torch::equal(c->w_ih[0], m->w_ih[0]));
}
