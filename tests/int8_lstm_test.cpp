// The int8 LSTM and the whole int8 engine (engine/int8_lstm.h, engine/int8_engine.h): hidden
// states against the simulated (dequantized) model within the activation-rounding error, state
// carried across calls exactly, OCS splits, the engine's perplexity against the simulated one,
// the sentence scorer through the engine, and refusals.
#include "corpus/corpus_store.h"
#include "engine/int8_engine.h"
#include "lm/score.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

LstmLm tiny_model(int64_t vocab, bool tied, int64_t layers = 2) {
  torch::manual_seed(5);
  LstmLmConfig c;
  c.vocab = vocab;
  c.emb = c.hidden = 24;
  c.layers = layers;
  c.tied = tied;
  LstmLm m(c);
  m->eval();
  return m;
}

QuantizedFile as_file(const QuantizedModel& qm) {
  QuantizedFile f;
  f.loaded.model = std::static_pointer_cast<LstmLmImpl>(qm.folded->clone_model());
  f.loaded.model->eval();
  f.loaded.path = "tiny";
  f.matrices = qm.tensors;
  return f;
}

// The plain reference of the int8 LSTM in LibTorch ops: every product's input rounded per row
// exactly as the engine rounds it (quantize_rows_int8, then back to float), multiplied by the
// folded dequantized weights (W'·[x̂; x̂[src]] = W_folded·x̂ for OCS splits), the gates by
// torch::sigmoid / tanh. The engine must match it to float rounding and fast_math's ~2e-7.
torch::Tensor reference_hidden(const LstmLm& m, const torch::Tensor& tokens, LstmState& state) {
  torch::NoGradGuard g;
  auto fq = [](const torch::Tensor& x) {
    auto [q, a] = quantize_rows_int8(x);
    return q.to(torch::kFloat) * a.unsqueeze(1);
  };
  const int64_t T = tokens.size(0), B = tokens.size(1);
  auto x = torch::embedding(m->encoder, tokens).reshape({T * B, -1});
  std::vector<torch::Tensor> hs, cs;
  const auto& cfg = m->config();
  for (int64_t l = 0; l < cfg.layers; ++l) {
    auto xp = torch::addmm(m->b_ih[l] + m->b_hh[l], fq(x), m->w_ih[l].t()).view({T, B, -1});
    auto h = layer_h(cfg, state, l), c = layer_c(cfg, state, l);
    std::vector<torch::Tensor> outs;
    for (int64_t t = 0; t < T; ++t) {
      auto gates = torch::addmm(xp[t], fq(h), m->w_hh[l].t()).chunk(4, 1);
      c = torch::sigmoid(gates[1]) * c + torch::sigmoid(gates[0]) * torch::tanh(gates[2]);
      h = torch::sigmoid(gates[3]) * torch::tanh(c);
      if (m->w_hr[l].defined()) h = fq(h).mm(m->w_hr[l].t());  // LSTMP: W_hr r̂_t
      outs.push_back(h);
    }
    x = torch::stack(outs).view({T * B, -1});
    hs.push_back(h);
    cs.push_back(c);
  }
  state = stack_state(cfg, hs, cs);
  return x.view({T, B, -1});
}

QuantConfig config(int bits, Granularity g, double ocs = 0) {
  QuantConfig q;
  q.bits = bits;
  q.granularity = g;
  if (ocs > 0) q.method = Method::kOcs, q.expand_ratio = ocs;
  return q;
}

}  // namespace

TEST(Int8Lstm, MatchesItsPlainReference) {
  auto model = tiny_model(50, false);
  {
    torch::NoGradGuard g;  // larger LSTM weights: gates spread over (0, 1), not all near 0.5
    for (auto& w : model->w_ih) w.mul_(4);
    for (auto& w : model->w_hh) w.mul_(4);
  }
  for (double r : {0.0, 0.25}) {
    QuantizedModel qm = quantize_model(model, config(4, Granularity::kRow, r));
    QuantizedFile f = as_file(qm);
    Int8Lstm engine(f);
    torch::manual_seed(3);
    auto tokens = torch::randint(0, 50, {9, 3}, torch::kLong);
    auto s_ref = qm.folded->init_state(3), s_int8 = qm.folded->init_state(3);
    s_ref.h.uniform_(-0.5, 0.5), s_ref.c.uniform_(-1, 1);
    s_int8.h.copy_(s_ref.h), s_int8.c.copy_(s_ref.c);
    auto ref = reference_hidden(qm.folded, tokens, s_ref);
    auto out = engine.hidden_states(tokens, s_int8);
    EXPECT_LT((out - ref).abs().max().item<float>(), 2e-5f) << "r = " << r;
    EXPECT_LT((s_int8.c - s_ref.c).abs().max().item<float>(), 1e-4f) << "r = " << r;
    EXPECT_GT(ref.abs().max().item<float>(), 0.5f);
  }
}

TEST(Int8Lstm, MatchesItsPlainReferenceOnAnyLayerStack) {
  // AWD-LSTM-like sizes (each layer its own) with an LSTMP projection in the middle layer:
  // in 10 -> H 16 (out 16) -> H 20 projected to 6 -> H 10 (out 10), tied (E = D = 10).
  for (bool tied : {false, true}) {
    torch::manual_seed(9);
    LstmLmConfig c;
    c.vocab = 30;
    c.emb = 10;
    c.layers = 3;
    c.layer_hidden = {16, 20, 10};
    c.hidden = 20;
    c.layer_proj = {0, 6, 0};
    c.tied = tied;
    LstmLm model(c);
    model->eval();
    {
      torch::NoGradGuard g;
      for (auto& w : model->w_ih) w.mul_(4);
      for (auto& w : model->w_hh) w.mul_(4);
      model->w_hr[1].mul_(4);
    }
    for (double r : {0.0, 0.25}) {
      QuantizedModel qm = quantize_model(model, config(4, Granularity::kRow, r));
      bool has_projection = false;
      for (const auto& t : qm.tensors) has_projection = has_projection || t.name == "projection.l1";
      EXPECT_TRUE(has_projection);
      QuantizedFile f = as_file(qm);
      Int8Lstm engine(f);
      torch::manual_seed(3);
      auto tokens = torch::randint(0, 30, {7, 3}, torch::kLong);
      auto s_ref = qm.folded->init_state(3), s_int8 = qm.folded->init_state(3);
      ASSERT_EQ(s_ref.h.sizes(), (std::vector<int64_t>{3, 3, 16}));
      ASSERT_EQ(s_ref.c.sizes(), (std::vector<int64_t>{3, 3, 20}));
      auto ref = reference_hidden(qm.folded, tokens, s_ref);
      auto out = engine.hidden_states(tokens, s_int8);
      ASSERT_EQ(out.sizes(), (std::vector<int64_t>{7, 3, 10}));
      EXPECT_LT((out - ref).abs().max().item<float>(), 2e-5f) << "r = " << r << " tied " << tied;
      EXPECT_LT((s_int8.h - s_ref.h).abs().max().item<float>(), 2e-5f);
      EXPECT_LT((s_int8.c - s_ref.c).abs().max().item<float>(), 1e-4f);
      EXPECT_GT(ref.abs().max().item<float>(), 0.3f);
      // The simulated model (float activations) is the same function within activation rounding.
      torch::NoGradGuard g;
      auto s_sim = qm.folded->init_state(3);
      auto sim = qm.folded->hidden_states(tokens, s_sim);
      EXPECT_LT((sim - ref).abs().max().item<float>(), 0.1f);
    }
  }
}

TEST(Int8Lstm, HiddenStatesFollowTheSimulatedModel) {
  auto model = tiny_model(50, false);
  for (double r : {0.0, 0.25}) {
    QuantizedModel qm = quantize_model(model, config(8, Granularity::kRow, r));
    QuantizedFile f = as_file(qm);
    Int8Lstm engine(f);
    EXPECT_TRUE(engine.embedding_from_codes());
    torch::manual_seed(1);
    auto tokens = torch::randint(0, 50, {9, 3}, torch::kLong);
    auto s_sim = qm.folded->init_state(3), s_int8 = qm.folded->init_state(3);
    torch::NoGradGuard g;
    auto ref = qm.folded->hidden_states(tokens, s_sim);
    auto out = engine.hidden_states(tokens, s_int8);
    ASSERT_EQ(out.sizes(), ref.sizes());
    // Activations in [-1, 1] rounded to 1/127 of their row's max; at 8-bit weights the gates
    // move by a few 1e-3, h and c by less. The bound is loose but far below the signal
    // (|h| ~ 0.1) and catches any wrong gate order, bias or split (those give errors ~0.1).
    EXPECT_LT((out - ref).abs().max().item<float>(), 0.01f) << "r = " << r;
    EXPECT_GT(ref.abs().max().item<float>(), 0.05f);
    EXPECT_LT((s_int8.c - s_sim.c).abs().max().item<float>(), 0.02f);
    if (r > 0) {
      int64_t splits = 0;
      for (const auto& t : qm.tensors) splits += t.plan.splits();
      EXPECT_GT(splits, 0);
    }
  }
}

TEST(Int8Lstm, CarriesTheStateAcrossCallsExactly) {
  auto model = tiny_model(40, false);
  QuantizedFile f = as_file(quantize_model(model, config(4, Granularity::kRow)));
  Int8Lstm engine(f);
  torch::manual_seed(2);
  auto tokens = torch::randint(0, 40, {7, 2}, torch::kLong);
  auto s1 = f.loaded.model->init_state(2), s2 = f.loaded.model->init_state(2);
  auto whole = engine.hidden_states(tokens, s1);
  auto a = engine.hidden_states(tokens.narrow(0, 0, 4), s2);
  auto b = engine.hidden_states(tokens.narrow(0, 4, 3), s2);
  EXPECT_TRUE(torch::equal(torch::cat({a, b}), whole));
  EXPECT_TRUE(torch::equal(s1.h, s2.h));
  EXPECT_TRUE(torch::equal(s1.c, s2.c));
}

TEST(Int8Lstm, RefusesWhatItCannotRun) {
  auto model = tiny_model(30, false);
  auto q = config(4, Granularity::Group(8));
  EXPECT_THROW_MESSAGE(Int8Lstm(as_file(quantize_model(model, q))), std::invalid_argument,
                       "group scales");
  q = config(4, Granularity::kRow);
  q.targets = {MatrixKind::kDecoder};
  EXPECT_THROW_MESSAGE(Int8Lstm(as_file(quantize_model(model, q))), std::invalid_argument,
                       "input.l0 is not quantized");
  q = config(12, Granularity::kRow);
  EXPECT_THROW_MESSAGE(Int8Lstm(as_file(quantize_model(model, q))), std::invalid_argument,
                       "over 8 bits");
  EXPECT_THROW_MESSAGE(parse_engine("int4"), std::invalid_argument, "float, int8");
}

TEST(Int8Engine, PerplexityOnTheTinyCorpusFollowsTheSimulatedOne) {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  for (bool tied : {false, true}) {
    for (double r : {0.0, 0.2}) {
      auto model = tiny_model(corpus.vocab.size(), tied);
      QuantizedModel qm = quantize_model(model, config(4, Granularity::kRow, r));
      EvalOptions o;
      o.batch = 4, o.bptt = 6;
      const double sim = evaluate(qm.folded, corpus.train, o).perplexity;
      QuantizedFile f = as_file(qm);
      o.engine = int8_engine(f, true, /*release_float=*/true);
      EXPECT_EQ(f.loaded.model->encoder.numel(), 0);  // only the codes are left
      const double int8 = evaluate(f.loaded.model, corpus.train, o).perplexity;
      EXPECT_NEAR(int8, sim, 0.005 * sim) << "tied " << tied << " r = " << r;
      EXPECT_NE(int8, sim);  // the engine really ran: activation rounding changes the value
    }
  }
}

TEST(Int8Engine, ScoresSentencesLikeTheSimulatedModel) {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  auto model = tiny_model(corpus.vocab.size(), false, 1);
  QuantizedModel qm = quantize_model(model, config(8, Granularity::kRow));
  SentenceScorer sim(qm.folded, corpus.vocab);
  QuantizedFile f = as_file(qm);
  SentenceScorer int8(f.loaded.model, corpus.vocab);
  int8.set_engine(int8_engine(f));
  const std::string sentence = corpus.vocab.word(3) + " " + corpus.vocab.word(5) + " zzz-oov";
  const SentenceScore a = sim.score(sentence), b = int8.score(sentence);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.oov, b.oov);
  EXPECT_NEAR(b.logprob, a.logprob, 0.01 * std::fabs(a.logprob));
}

TEST(Int8Engine, RunsFromAPackedFileWithoutFloatMatrices) {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  lmquant::test::TempDir tmp;
  for (bool tied : {false, true}) {
    LoadedModel src;
    src.model = tiny_model(corpus.vocab.size(), tied);
    src.path = "src.lmq", src.file_sha256 = "feed";
    QuantConfig q = config(4, Granularity::kRow, 0.1);
    q.targets = {Target::kInput, Target::kRecurrent,
                 Target::kDecoder};  // embedding float if untied
    const QuantizedModel qm = quantize_model(src.model, q);
    save_quantized(tmp.file("p.lmq"), src, qm, /*packed=*/true);
    QuantizedFile full = read_quantized(tmp.file("p.lmq"));
    QuantizedFile lean = read_quantized(tmp.file("p.lmq"), torch::kCPU, /*float_matrices=*/false);
    // The quantized matrices were never made in float; biases and the float embedding were.
    EXPECT_EQ(lean.loaded.model->w_ih[0].numel(), 0);
    EXPECT_EQ(lean.loaded.model->decoder_weight.numel(), 0);
    EXPECT_EQ(lean.loaded.model->encoder.numel(), tied ? 0 : full.loaded.model->encoder.numel());
    EXPECT_TRUE(torch::equal(lean.loaded.model->b_hh[1], full.loaded.model->b_hh[1]));
    EvalOptions o;
    o.batch = 4, o.bptt = 6;
    o.engine = int8_engine(full);
    const double a = evaluate(full.loaded.model, corpus.train, o).total_nll;
    o.engine = int8_engine(lean);
    const double b = evaluate(lean.loaded.model, corpus.train, o).total_nll;
    EXPECT_EQ(a, b) << "tied " << tied;
  }
}
