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

using lmquant::test::stack_config;

TEST(LstmLm, AnyLayerStackHasItsShapesAndPyTorchsNames) {
  torch::manual_seed(2);
  LstmLm m(stack_config(false));
  EXPECT_EQ(m->w_ih[0].sizes(), (std::vector<int64_t>{32, 6}));
  EXPECT_EQ(m->w_hh[0].sizes(), (std::vector<int64_t>{32, 8}));
  EXPECT_EQ(m->w_ih[1].sizes(), (std::vector<int64_t>{36, 8}));
  EXPECT_EQ(m->w_hh[1].sizes(), (std::vector<int64_t>{36, 4}));
  EXPECT_EQ(m->w_hr[1].sizes(), (std::vector<int64_t>{4, 9}));
  EXPECT_FALSE(m->w_hr[0].defined());
  EXPECT_EQ(m->w_ih[2].sizes(), (std::vector<int64_t>{20, 4}));
  EXPECT_EQ(m->decoder_weight.sizes(), (std::vector<int64_t>{17, 5}));
  std::vector<std::string> names;
  for (const auto& [n, w] : m->named_weights()) names.push_back(n);
  // PyTorch's nn.LSTM order: weight_ih, weight_hh, bias_ih, bias_hh, weight_hr.
  EXPECT_EQ(names[5], "rnn.weight_ih_l1");
  EXPECT_EQ(names[9], "rnn.weight_hr_l1");
  EXPECT_EQ(m->config().describe(), "3-layer LSTMP 8,9,5 (proj 0,4,0), emb 6, vocab 17, untied");
  auto s = m->init_state(2);
  EXPECT_EQ(s.h.sizes(), (std::vector<int64_t>{3, 2, 8}));
  EXPECT_EQ(s.c.sizes(), (std::vector<int64_t>{3, 2, 9}));
}

TEST(LstmLm, AnyLayerStackFusedMatchesExplicit) {
  for (bool tied : {false, true}) {
    torch::manual_seed(4);
    LstmLm m(stack_config(tied));
    m->eval();
    torch::NoGradGuard g;
    auto tokens = torch::randint(0, 17, {6, 3}, torch::kInt64);
    auto s1 = m->init_state(3), s2 = m->init_state(3);
    s1.h.uniform_(-0.5, 0.5), s1.c.uniform_(-1, 1);
    // Columns beyond a layer's width stay zero (the state layout).
    s1.h[1].narrow(1, 4, 4).zero_(), s1.h[2].narrow(1, 5, 3).zero_();
    s1.c[0].narrow(1, 8, 1).zero_(), s1.c[2].narrow(1, 5, 4).zero_();
    s2.h.copy_(s1.h), s2.c.copy_(s1.c);
    auto fused = m->forward(tokens, s1);
    m->force_explicit = true;
    auto expl = m->forward(tokens, s2);
    EXPECT_LT((fused - expl).abs().max().item<double>(), 1e-5);
    EXPECT_LT((s1.h - s2.h).abs().max().item<double>(), 1e-5);
    EXPECT_LT((s1.c - s2.c).abs().max().item<double>(), 1e-5);
    EXPECT_EQ(s1.h[1].narrow(1, 4, 4).abs().max().item<double>(), 0);
    EXPECT_GT(s1.h[1].narrow(1, 0, 4).abs().max().item<double>(), 0);
  }
}

TEST(LstmLm, SplitProjectionColumnPreservesTheFunction) {
  torch::manual_seed(6);
  LstmLm m(stack_config(false));
  m->eval();
  torch::NoGradGuard g;
  auto tokens = torch::randint(0, 17, {5, 2}, torch::kInt64);
  auto s1 = m->init_state(2), s2 = m->init_state(2);
  auto plain = m->forward(tokens, s1);
  auto w = m->w_hr[1];
  auto half = w.select(1, 2).clone() / 2;
  auto split = torch::cat({w, half.unsqueeze(1)}, 1);
  split.select(1, 2).copy_(half);
  m->w_hr[1].set_data(split);
  m->expansion.projection_idx = {torch::Tensor(), torch::tensor({int64_t{2}}), torch::Tensor()};
  EXPECT_FALSE(m->expansion.lstm_plain());
  auto expanded = m->forward(tokens, s2);
  EXPECT_LT((plain - expanded).abs().max().item<double>(), 1e-5);
}

TEST(LstmLm, LayerSizesInTheConfig) {
  LstmLmConfig c = stack_config(true);
  const auto j = c.to_json();
  EXPECT_EQ(j.at("layer_hidden"), nlohmann::json({8, 9, 5}));
  EXPECT_EQ(LstmLmConfig::from_json(j).to_json(), j);
  EXPECT_EQ(c.input(2), 4);
  EXPECT_EQ(c.top(), 5);
  // A uniform model's JSON is what it always was (its files unchanged).
  LstmLmConfig u;
  u.vocab = 10;
  EXPECT_FALSE(u.to_json().contains("layer_hidden"));
  EXPECT_FALSE(u.to_json().contains("layer_proj"));
  auto bad = [](LstmLmConfig x, const std::string& what) {
    try {
      x.validate();
      ADD_FAILURE() << "accepted: " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  LstmLmConfig x = c;
  x.layer_hidden = {8, 9};
  bad(x, "layer_hidden has 2 sizes for 3 layers");
  x = c;
  x.layer_proj = {0, 9, 0};
  bad(x, "layer_proj[1] must be 0 (none) or in (0, 9)");
  x = c;
  x.hidden = 8;
  bad(x, "hidden must be the largest of layer_hidden (9)");
  x = c;
  x.emb = 6;
  bad(x, "tied weights need emb == the top layer's output width");
  EXPECT_EQ(parse_layer_sizes("1150,1150,400", 3), (std::vector<int64_t>{1150, 1150, 400}));
  EXPECT_EQ(parse_layer_sizes("128", 2), (std::vector<int64_t>{128, 128}));
  EXPECT_THROW(parse_layer_sizes("1150,x", 2), std::invalid_argument);
  EXPECT_THROW(parse_layer_sizes("1,2", 3), std::invalid_argument);
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
  EXPECT_THROW_MESSAGE(c.validate(), std::invalid_argument,
                       "tied weights need emb == the top layer's output width");
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
