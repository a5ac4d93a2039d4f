// Uses the installed API: build a tiny model, quantize it with OCS, score a sentence.
#include <lmquant.h>

#include <cstdio>

int main() {
  lmquant::configure_threads(0);
  lmquant::Vocab vocab;
  for (const char* w : {"<eos>", "<unk>", "the", "cat", "sat"}) vocab.add(w);
  lmquant::LstmLmConfig config;
  config.vocab = vocab.size();
  config.emb = config.hidden = 8;
  torch::manual_seed(0);
  lmquant::LstmLm model(config);
  lmquant::QuantConfig q;
  q.method = lmquant::Method::kOcs;
  q.bits = 4;
  q.expand_ratio = 0.25;
  q.clip = lmquant::ClipRule::parse("mse");
  lmquant::QuantizedModel qm = lmquant::quantize_model(model, q);
  lmquant::SentenceScorer scorer(qm.folded, vocab);
  const auto s = scorer.score("the cat sat");
  std::printf("consumer: %zu matrices quantized, logprob %.4f over %lld tokens\n",
              qm.matrices.size(), s.logprob, static_cast<long long>(s.tokens));
  return s.tokens == 4 && qm.matrices.size() == 6 ? 0 : 1;
}
