// Sentence scoring: equals the model's own log-probabilities; OOV handling.
#include "corpus/word_tokenizer.h"
#include "lm/nll.h"
#include "lm/score.h"
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
  const double want = lp[0][1].item<double>() + lp[1][2].item<double>() +
                      lp[2][3].item<double>() + lp[3][0].item<double>();
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
