// The one result type (report/record.h): JSON round trip, provenance comparison and refusal.
#include "report/record.h"
#include "test_utils.h"

using namespace lmquant;

namespace {
Record sample() {
  Record r;
  r.source.model = "m.lmq", r.source.model_sha256 = "aa", r.source.corpus = "wikitext2";
  r.source.split = "valid", r.source.split_sha256 = "bb", r.source.version = lmquant_version();
  r.source.split_tokens = 300, r.source.split_words = 200;
  r.config.method = Method::kOcs, r.config.bits = 3, r.config.expand_ratio = 0.05;
  r.config.clip = ClipRule::parse("percentile:99.9"), r.config.granularity = Granularity::kRow;
  r.eval.loss = 5.0, r.eval.perplexity = std::exp(5.0), r.eval.tokens = 700;
  r.eval.chunk_nll = {1750.0, 1750.0}, r.eval.chunk_tokens = {350, 350};
  r.float_perplexity = 140;
  r.vs_float = {6.0, 4.0, 8.0, 2000};
  r.repeat_perplexities = {148.0, 149.0};
  r.params_before = 100, r.params_after = 105, r.macs_before = 10, r.macs_after = 11;
  MatrixReport m;
  m.name = "recurrent.l0", m.rows = 8, m.cols = 2, m.sqnr_db = INFINITY;
  r.matrices = {m};
  return r;
}
}  // namespace

TEST(Record, JsonRoundTrip) {
  const Record r = sample();
  const Record b = Record::from_json(nlohmann::json::parse(r.to_json().dump()));
  EXPECT_EQ(b.to_json(), r.to_json());
  EXPECT_TRUE(b.config == r.config);
  EXPECT_EQ(b.label(), "ocs r=0.05 percentile:99.9 3b row");
  EXPECT_EQ(b.macs_overhead_pct(), 10.0);
  EXPECT_TRUE(std::isinf(b.matrices[0].sqnr_db));  // JSON null -> ∞ dB
  // Word-normalised: exp(loss · tokens / words) = exp(7.5).
  EXPECT_NEAR(b.word_perplexity(), std::exp(7.5), 1e-9);
  EXPECT_EQ(b.spread().n, 2);
}

TEST(Record, ProvenanceDecidesWhatMayBeMerged) {
  Record a = sample(), b = sample();
  EXPECT_EQ(a.source.differs_from(b.source), "");
  b.source.model = "/elsewhere/copy.lmq";  // the same bytes elsewhere: the same model
  EXPECT_EQ(a.source.differs_from(b.source), "");
  b.source.split = "test", b.source.split_sha256 = "cc";
  EXPECT_EQ(a.source.differs_from(b.source), "split");
  EXPECT_EQ(a.source.differs_from(b.source, /*same_stream=*/false), "");
  EXPECT_NO_THROW(check_same_provenance({a, b}, false));
  b.source.model_sha256 = "zz";
  EXPECT_EQ(a.source.differs_from(b.source, false), "model_sha256");
  EXPECT_THROW_MESSAGE(check_same_provenance({a, b}, false), std::runtime_error,
                       "model_sha256 is 'aa'");
  b = sample();
  b.source.tokenizer = "spm:123";
  EXPECT_EQ(a.source.differs_from(b.source), "tokenizer");
}
