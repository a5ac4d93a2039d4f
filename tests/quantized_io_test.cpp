// Quantized model files (quant/quantized_io.h): save, load back the folded model exactly, and
// refuse a truncated file; packed files give the same model from fewer bytes.
#include "quant/quantized_io.h"

#include <filesystem>
#include <sstream>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "lm/checkpoint.h"
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

TEST(QuantizedIo, PackedFilesGiveTheSameModelFromFewerBytes) {
  lmquant::test::TempDir tmp;
  torch::manual_seed(5);
  LstmLmConfig c;
  c.vocab = 101, c.emb = c.hidden = 24;
  LoadedModel src;
  src.model = LstmLm(c);
  src.path = "src.lmq", src.file_sha256 = "beef";
  for (const std::string& spec : {"ocs 3 row", "clip 4 group:5", "clip 8 tensor", "clip 2 row"}) {
    std::istringstream in(spec);
    std::string method, gran;
    QuantConfig q;
    in >> method >> q.bits >> gran;
    q.method = parse_method(method);
    q.granularity = parse_granularity(gran);
    if (q.method == Method::kOcs) q.expand_ratio = 0.1;
    q.matrix_bits["embedding"] = 12;  // > 8 bits: kept as int16 codes
    const QuantizedModel qm = quantize_model(src.model, q);
    save_quantized(tmp.file("q.lmq"), src, qm);
    save_quantized(tmp.file("p.lmq"), src, qm, true);
    const QuantizedFile a = read_quantized(tmp.file("q.lmq")),
                        b = read_quantized(tmp.file("p.lmq"));
    EXPECT_EQ(b.loaded.format, "packed");
    ASSERT_EQ(a.matrices.size(), b.matrices.size());
    for (size_t i = 0; i < a.matrices.size(); ++i) {
      EXPECT_EQ(a.matrices[i].name, b.matrices[i].name);
      EXPECT_TRUE(torch::equal(a.matrices[i].codes.to(torch::kShort),
                               b.matrices[i].codes.to(torch::kShort)))
          << spec << " " << a.matrices[i].name;
      EXPECT_TRUE(torch::equal(a.matrices[i].step, b.matrices[i].step)) << spec;
      EXPECT_EQ(a.matrices[i].plan.source, b.matrices[i].plan.source);
    }
    for (const auto& [name, w] : a.loaded.model->named_weights())
      for (const auto& [n2, w2] : b.loaded.model->named_weights())
        if (n2 == name) EXPECT_TRUE(torch::equal(w, w2)) << spec << " " << name;
    EXPECT_LT(std::filesystem::file_size(tmp.file("p.lmq")),
              std::filesystem::file_size(tmp.file("q.lmq")))
        << spec;
  }
  const std::string bytes = read_file(tmp.file("p.lmq"));
  write_file_atomic(tmp.file("cut.lmq"), bytes.substr(0, bytes.size() - 10));
  EXPECT_THROW_MESSAGE(load_any_model(tmp.file("cut.lmq")), std::runtime_error, "truncated");
  std::string bad = bytes;
  bad[bad.size() - 40] ^= 0x5A;
  write_file_atomic(tmp.file("bad.lmq"), bad);
  EXPECT_THROW_MESSAGE(load_any_model(tmp.file("bad.lmq")), std::runtime_error, "corrupt");
}

TEST(QuantizedIo, MidriseGridFilesAndTheInt8Engine) {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  lmquant::test::TempDir tmp;
  LoadedModel src;
  src.model = lmquant::test::tiny_lstm(corpus.vocab.size(), 8);
  src.path = "src.lmq", src.file_sha256 = "f00d";
  QuantConfig q;
  q.bits = 2, q.clip = ClipRule::parse("mse"), q.granularity = Granularity::kRow;
  q.grid = Grid::kMidrise;
  EXPECT_EQ(q.label(), "mse 2b row midrise");
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  const QuantizedModel qm = quantize_model(src.model, q);
  QuantConfig tread = q;
  tread.grid = Grid::kMidtread;
  EXPECT_EQ(qm.size_bits, quantize_model(src.model, tread).size_bits);  // the same storage
  for (const auto& m : qm.tensors)
    EXPECT_TRUE((m.codes.remainder(2) != 0).all().item<bool>()) << m.name;
  save_quantized(tmp.file("p.lmq"), src, qm, /*packed=*/true);
  QuantizedFile f = read_quantized(tmp.file("p.lmq"), torch::kCPU, /*float_matrices=*/false);
  ASSERT_EQ(f.matrices.size(), qm.tensors.size());
  for (const auto& want : qm.tensors)
    for (const auto& got : f.matrices)
      if (got.name == want.name)
        EXPECT_TRUE(torch::equal(got.codes.to(torch::kShort), want.codes)) << want.name;
  EXPECT_TRUE(torch::equal(load_any_model(tmp.file("p.lmq")).model->decoder_weight,
                           qm.folded->decoder_weight));
  const auto e = lmquant::test::simulated_and_int8_engine(qm, tmp.file("p.lmq"), corpus.train);
  EXPECT_NEAR(e.int8_engine, e.simulated, 0.005 * e.simulated);
  QuantConfig bad = q;
  bad.bits = 8;
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "1..7");
}

TEST(QuantizedIo, HalfScalesAreFloat16EverywhereAndCountSixteenBits) {
  lmquant::test::TempDir tmp;
  torch::manual_seed(10);
  LstmLmConfig c;
  c.vocab = 29, c.emb = c.hidden = 12;
  LoadedModel src;
  src.model = LstmLm(c);
  src.path = "src.lmq", src.file_sha256 = "abcd";
  QuantConfig q;
  q.bits = 3, q.granularity = Granularity::kRow, q.half_scales = true;
  EXPECT_EQ(q.label(), "max 3b row f16");
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  const QuantizedModel half = quantize_model(src.model, q);
  QuantConfig full = q;
  full.half_scales = false;
  const QuantizedModel single = quantize_model(src.model, full);
  int64_t rows = 0;
  for (const auto& m : half.tensors) {
    rows += m.step.numel();
    EXPECT_TRUE(torch::equal(m.step, m.step.to(torch::kHalf).to(torch::kFloat))) << m.name;
  }
  EXPECT_DOUBLE_EQ(single.size_bits - half.size_bits, 16.0 * static_cast<double>(rows));
  save_quantized(tmp.file("p.lmq"), src, half, /*packed=*/true);
  EXPECT_EQ(read_checkpoint(tmp.file("p.lmq")).find("decoder.step")->scalar_type(), torch::kHalf);
  const LoadedModel back = load_any_model(tmp.file("p.lmq"));
  EXPECT_TRUE(torch::equal(back.model->w_hh[1], half.folded->w_hh[1]));
}
