// The matrix table (lm/matrices.h): names, keys, the tied rule, accounting, and the collected
// inputs reproduce the LSTM's own pre-activations and logits.
#include "lm/matrices.h"

#include <map>

#include "test_utils.h"

using namespace lmquant;
using lmquant::test::max_rel_diff;

namespace {
LstmLm tiny(bool tied, int64_t layers = 2) {
  torch::manual_seed(3);
  LstmLmConfig c;
  c.vocab = 11, c.emb = c.hidden = 6, c.layers = layers, c.tied = tied;
  LstmLm m(c);
  m->eval();
  return m;
}
}  // namespace

TEST(Matrices, TableNamesKeysAndShapes) {
  auto m = tiny(false);
  const auto t = named_matrices(m->config());
  std::vector<std::string> names, keys;
  for (const auto& x : t) names.push_back(x.name), keys.push_back(x.pytorch_key);
  EXPECT_EQ(names, (std::vector<std::string>{"embedding", "decoder", "input.l0", "recurrent.l0",
                                             "input.l1", "recurrent.l1"}));
  EXPECT_EQ(keys,
            (std::vector<std::string>{"encoder.weight", "decoder.weight", "rnn.weight_ih_l0",
                                      "rnn.weight_hh_l0", "rnn.weight_ih_l1", "rnn.weight_hh_l1"}));
  EXPECT_TRUE(t[2].gated);
  EXPECT_FALSE(t[1].gated);
  EXPECT_EQ(t[0].macs_per_column, 0);   // a lookup
  EXPECT_EQ(t[1].macs_per_column, 11);  // V
  EXPECT_EQ(t[3].macs_per_column, 24);  // 4H
  // The tensor is the model's own: set_data through the table replaces the parameter.
  EXPECT_TRUE(t[3].weight(*m).is_same(m->w_hh[0]));
  t[1].expansion_slot(*m) = torch::tensor({1}, torch::kLong);
  EXPECT_TRUE(m->expansion.decoder_idx.defined());
  EXPECT_THROW_MESSAGE(find_matrix(m->config(), "recurrent.l7"), std::invalid_argument,
                       "valid names: embedding, decoder, input.l0");
  EXPECT_EQ(find_matrix_by_key(t, "rnn.weight_ih_l1")->name, "input.l1");
  EXPECT_EQ(find_matrix_by_key(t, "decoder.bias"), nullptr);
}

TEST(Matrices, TiedRuleLivesHere) {
  auto m = tiny(true);
  const auto t = named_matrices(m->config());
  ASSERT_EQ(t.front().name, "embedding+decoder");
  EXPECT_TRUE(t.front().tied);
  EXPECT_TRUE(t.front().covers(MatrixKind::kEmbedding));
  EXPECT_TRUE(t.front().covers(MatrixKind::kDecoder));
  EXPECT_EQ(t.size(), 5u);  // no separate decoder
  for (const auto& [name, w] : stored_weights(*m)) EXPECT_NE(name, "decoder.weight");
  // Stored once: V·E + per layer 4H(in + H + 2) + V.
  EXPECT_EQ(stored_parameter_count(*m), 11 * 6 + 2 * 24 * (6 + 6 + 2) + 11);
  auto u = tiny(false);
  EXPECT_EQ(stored_parameter_count(*u), stored_parameter_count(*m) + 11 * 6);
  EXPECT_EQ(macs_per_token(*u), 11 * 6 + 2 * (24 * 6 + 24 * 6));
  // Every name of the tied tensor, and which matrix plays the decoder or the embedding.
  EXPECT_EQ(t.front().state_dict_keys(),
            (std::vector<std::string>{"encoder.weight", "decoder.weight"}));
  EXPECT_EQ(matrix_covering(m->config(), MatrixKind::kDecoder).name, "embedding+decoder");
  EXPECT_EQ(matrix_covering(m->config(), MatrixKind::kEmbedding).name, "embedding+decoder");
  EXPECT_EQ(matrix_covering(u->config(), MatrixKind::kDecoder).name, "decoder");
  EXPECT_EQ(matrix_covering(u->config(), MatrixKind::kEmbedding).name, "embedding");
  EXPECT_EQ(matrix_covering(u->config(), MatrixKind::kRecurrent, 1).name, "recurrent.l1");
  EXPECT_EQ(named_matrices(u->config())[1].state_dict_keys(),
            std::vector<std::string>{"decoder.weight"});
}

TEST(Matrices, CollectedInputsReproduceTheForwardPass) {
  auto m = tiny(false);
  auto tokens = torch::randint(0, 11, {5, 3}, torch::kLong);
  auto s1 = m->init_state(3);
  // A non-zero carried state: h_{t−1} at t = 0 must be it.
  (void)m->hidden_states(torch::randint(0, 11, {4, 3}, torch::kLong), s1);
  LstmState s2{s1.h.clone(), s1.c.clone()};
  const auto h_in = s1.h.clone(), c_in = s1.c.clone();
  std::map<std::string, torch::Tensor> x;
  collect_matrix_inputs(*m, tokens, s1,
                        [&](const NamedMatrix& mat, const torch::Tensor& in) { x[mat.name] = in; });
  auto top = m->hidden_states(tokens, s2);
  EXPECT_EQ(x.count("embedding"), 0u);  // a lookup has no input
  ASSERT_EQ(x.size(), 5u);
  for (const auto& [name, in] : x) EXPECT_EQ(in.size(0), 15) << name;  // T·B rows
  // The decoder reads the top h_t.
  EXPECT_LT(max_rel_diff(x["decoder"], top.reshape({-1, 6})), 1e-5);
  // input.l0 is the embedding of the tokens.
  EXPECT_LT(max_rel_diff(x["input.l0"], m->encoder.index_select(0, tokens.reshape(-1))), 1e-6);
  // recurrent.l{k} starts with the carried h, then is layer k's h_t shifted by one step, which
  // (for k = 0) is what input.l1 holds.
  EXPECT_LT(max_rel_diff(x["recurrent.l0"].narrow(0, 0, 3), h_in[0]), 1e-6);
  EXPECT_LT(max_rel_diff(x["recurrent.l1"].narrow(0, 0, 3), h_in[1]), 1e-6);
  EXPECT_LT(max_rel_diff(x["recurrent.l0"].narrow(0, 3, 12), x["input.l1"].narrow(0, 0, 12)), 1e-5);
  // W_ih x_t + W_hh h_{t−1} + b: step 0 of layer 0 from the carried c gives layer 0's first h_t.
  auto g = (torch::addmm(m->b_ih[0] + m->b_hh[0], x["input.l0"], m->w_ih[0].t()) +
            x["recurrent.l0"].mm(m->w_hh[0].t()))
               .narrow(0, 0, 3)
               .chunk(4, 1);
  auto c = torch::sigmoid(g[1]) * c_in[0] + torch::sigmoid(g[0]) * torch::tanh(g[2]);
  auto h = torch::sigmoid(g[3]) * torch::tanh(c);
  EXPECT_LT(max_rel_diff(h, x["input.l1"].narrow(0, 0, 3)), 1e-5);
  // The state advances as the forward pass's does.
  EXPECT_LT(max_rel_diff(s1.h, s2.h), 1e-5);
  EXPECT_LT(max_rel_diff(s1.c, s2.c), 1e-5);
}

TEST(Matrices, ParameterCountFromTheConfigAlone) {
  // The header's worked example: vocab 10, emb = hidden = 4, 1 layer, untied.
  LstmLmConfig c;
  c.vocab = 10;
  c.emb = c.hidden = 4;
  c.layers = 1;
  EXPECT_EQ(config_parameter_count(c), 250);
  // Any stack, tied or not, projected or not: what the model itself stores.
  for (bool tied : {false, true}) {
    const LstmLmConfig s = lmquant::test::stack_config(tied);
    LstmLm m(s);
    EXPECT_EQ(config_parameter_count(s), stored_parameter_count(*m)) << "tied " << tied;
    for (const auto& nm : named_matrices(s)) {
      const auto [rows, cols] = matrix_shape(s, nm);
      EXPECT_EQ(nm.weight(*m).sizes(), (std::vector<int64_t>{rows, cols})) << nm.name;
    }
  }
}
