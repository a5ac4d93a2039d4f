// Quantized model files (quant/quantized_io.h): save, load back the folded model exactly, and
// refuse a truncated file.
#include "lm/evaluate.h"
#include "quant/quantized_io.h"
#include "test_utils.h"
#include "util/atomic_file.h"

using namespace lmquant;

TEST(QuantizedIo, RoundTripGivesTheFoldedModel) {
  lmquant::test::TempDir tmp;
  torch::manual_seed(4);
  LstmLmConfig c;
  c.vocab = 13, c.emb = c.hidden = 8;
  LoadedModel src;
  src.model = LstmLm(c);
  src.path = "src.lmq", src.file_sha256 = "feed";
  QuantConfig q;
  q.method = Method::kOcs, q.bits = 3, q.expand_ratio = 0.25, q.granularity = Granularity::kRow;
  const QuantizedModel qm = quantize_model(src.model, q);
  save_quantized(tmp.file("q.lmq"), src, qm);
  const LoadedModel back = load_any_model(tmp.file("q.lmq"));
  EXPECT_EQ(back.format, "quantized");
  EXPECT_EQ(back.meta.at("source_sha256"), "feed");
  EXPECT_EQ(QuantConfig::from_json(back.meta.at("quant")).label(), q.label());
  for (const auto& [name, w] : qm.folded->named_weights()) {
    torch::Tensor other;
    for (const auto& [n2, w2] : back.model->named_weights())
      if (n2 == name) other = w2;
    EXPECT_LT(lmquant::test::max_rel_diff(other, w), 1e-6) << name;
  }
  const std::string bytes = read_file(tmp.file("q.lmq"));
  write_file_atomic(tmp.file("cut.lmq"), bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW_MESSAGE(load_any_model(tmp.file("cut.lmq")), std::runtime_error, "truncated");
}
