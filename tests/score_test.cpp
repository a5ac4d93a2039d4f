// Sentence scoring: equals the model's own log-probabilities; OOV handling.
#include "lm/score.h"

#include "corpus/word_tokenizer.h"
#include "lm/nll.h"
#include "test_utils.h"

using namespace lmquant;

namespace {
std::pair<LstmLm, Vocab> tiny(bool with_unk) {
  Vocab v;
  for (auto w : {"<eos>", "the", "cat", "sat"}) v.add(w);
  if (with_unk) v.add("<unk>");
  torch::manual_seed(4);
  LstmLmConfig c;
  c.vocab = v.size();
  c.emb = c.hidden = 6;
  return {LstmLm(c), v};
}
}  // namespace

TEST(Score, EqualsTheSumOfNextTokenLogProbabilities) {
  auto [m, v] = tiny(true);
  SentenceScorer s(m, v);
  auto r = s.score("the cat  sat");
  EXPECT_EQ(r.tokens, 4);
  EXPECT_EQ(r.oov, 0);
  // By hand: inputs <eos> the cat sat, targets the cat sat <eos>.
  torch::NoGradGuard g;
  m->eval();
  auto state = m->init_state(1);
  auto logits = m->forward(torch::tensor({0, 1, 2, 3}, torch::kInt64).view({4, 1}), state);
  auto lp = torch::log_softmax(logits.to(torch::kDouble), 1);
  const double want = lp[0][1].item<double>() + lp[1][2].item<double>() + lp[2][3].item<double>() +
                      lp[3][0].item<double>();
  EXPECT_NEAR(r.logprob, want, 1e-5);
  EXPECT_NEAR(r.perplexity, std::exp(-want / 4), 1e-4);
}

TEST(Score, OovWordsAreScoredAsUnkOrRefused) {
  auto [m, v] = tiny(true);
  SentenceScorer s(m, v);
  auto r = s.score("the dog sat");
  EXPECT_EQ(r.oov, 1);
  EXPECT_EQ(s.score("").tokens, 1);  // an empty sentence is just <eos>
  auto [m2, v2] = tiny(false);
  SentenceScorer s2(m2, v2);
  EXPECT_THROW_MESSAGE(s2.score("the dog"), std::runtime_error, "'dog' is not in the vocabulary");
}

TEST(Score, BatchKeepsOrderAndEqualsOneByOne) {
  auto [m, v] = tiny(true);
  SentenceScorer s(m, v);
  // Lengths differ (the batch runs longest first and drops finished columns); the empty one is
  // just <eos>; a sentence longer than the LSTM window and the decoder's row block.
  std::string longest;
  for (int i = 0; i < kScoreWindow * 3 + kScoreRows / 2 + 7; ++i)
    longest += i % 3 ? " cat" : " the";
  const std::vector<std::string> texts = {"the cat", "", "sat the cat sat cat", longest, "cat"};
  const std::vector<std::string_view> views(texts.begin(), texts.end());
  const auto batch = s.score_batch(views, /*token_logprobs=*/true);
  ASSERT_EQ(batch.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto one = s.score(texts[i]);
    EXPECT_EQ(batch[i].tokens, one.tokens) << i;
    EXPECT_EQ(batch[i].words, one.words) << i;
    EXPECT_NEAR(batch[i].logprob, one.logprob, 1e-6 * std::abs(one.logprob) + 1e-9) << i;
    // Per-token log-probabilities: one per target, summing to the sentence's.
    ASSERT_EQ(batch[i].token_logprobs.numel(), batch[i].tokens);
    EXPECT_NEAR(batch[i].token_logprobs.sum().item<double>(), batch[i].logprob, 1e-9);
    EXPECT_LE(batch[i].token_logprobs.max().item<double>(), 0.0);
  }
  EXPECT_EQ(batch[3].tokens, static_cast<int64_t>(kScoreWindow * 3 + kScoreRows / 2 + 8));
  // The per-token values are the model's next-token log-probabilities, by hand.
  torch::NoGradGuard g;
  auto state = m->init_state(1);
  auto lp = torch::log_softmax(
      m->forward(torch::tensor({0, 1, 2}, torch::kInt64).view({3, 1}), state).to(torch::kDouble),
      1);
  EXPECT_NEAR(batch[0].token_logprobs[0].item<double>(), lp[0][1].item<double>(), 1e-5);
  EXPECT_NEAR(batch[0].token_logprobs[1].item<double>(), lp[1][2].item<double>(), 1e-5);
  EXPECT_NEAR(batch[0].token_logprobs[2].item<double>(), lp[2][0].item<double>(), 1e-5);
  // The same batch twice gives the same numbers to the last digit; an empty batch nothing.
  const auto again = s.score_batch(views);
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(again[i].logprob, batch[i].logprob);
  EXPECT_FALSE(again[0].token_logprobs.defined());
  EXPECT_TRUE(s.score_batch({}).empty());
}
