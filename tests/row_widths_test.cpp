// Bits per row (quant/row_widths.h): the allocation's worked example and edge cases, each
// sensitivity on hand-computed tensors, and per-row widths end to end: quantize_model, the
// accounting, quantized and packed files, the int8 engine, the configuration's JSON and its
// refusals. Also gptq_embedding (the embedding rounded against W_ih).
#include "quant/row_widths.h"

#include <cmath>
#include <filesystem>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "lm/checkpoint.h"
#include "quant/calibration.h"
#include "quant/quantized_io.h"
#include "quant/row_width_rounding.h"
#include "quant/uniform_quantizer.h"
#include "test_utils.h"

using namespace lmquant;

TEST(RowWidths, WorkedExampleOfTheHeader) {
  const auto cost = torch::tensor({10.0, 2.0, 1.0, 1.0}, torch::kDouble).view({2, 2});
  const RowAllocation a = allocate_row_widths(cost, {2, 4}, 3.0);
  EXPECT_EQ(a.bits, (std::vector<int>{4, 2}));
  EXPECT_DOUBLE_EQ(a.mean_bits, 3.0);
  EXPECT_DOUBLE_EQ(a.predicted, 3.0);
}

TEST(RowWidths, BudgetsAtTheEndsHullsAndFill) {
  // Three rows, widths {2, 3, 4, 8}; costs fall with width.
  const auto cost = torch::tensor({{9.0, 4.0, 1.0},   // 2 bits
                                   {5.0, 3.0, 0.5},   // 3
                                   {3.0, 2.0, 0.25},  // 4
                                   {0.0, 0.0, 0.0}},  // 8
                                  torch::kDouble);
  const std::vector<int> w = {2, 3, 4, 8};
  EXPECT_EQ(allocate_row_widths(cost, w, 2.0).bits, (std::vector<int>{2, 2, 2}));
  EXPECT_EQ(allocate_row_widths(cost, w, 8.0).bits, (std::vector<int>{8, 8, 8}));
  // Budget 3 (3 bits to spend beyond 2 per row). Hull steps (gain per bit): row 0 2→3 (4),
  // 3→4 (2), 4→8 (0.75); row 1 2→4 (1: slopes 1 to 3 and to 4, the farther taken), 4→8 (0.5);
  // row 2 2→3 (0.5), 3→4 (0.25), 4→8 (1/16). Taken in that order: row 0 to 3, to 4 (2 bits
  // spent); row 1's 2-bit step does not fit (its row stops); row 0's 4-bit step neither; row 2
  // to 3 (the last bit).
  const RowAllocation a = allocate_row_widths(cost, w, 3.0);
  EXPECT_EQ(a.bits, (std::vector<int>{4, 2, 3}));  // 4 + 2 + 3 = 9 = 3 · 3
  EXPECT_DOUBLE_EQ(a.predicted, 3.0 + 4.0 + 0.5);
  EXPECT_LE(a.mean_bits, 3.0);
  // A wider width that costs more is never taken (the hull skips it).
  const auto worse = torch::tensor({{1.0}, {2.0}}, torch::kDouble);
  EXPECT_EQ(allocate_row_widths(worse, {2, 4}, 4.0).bits, (std::vector<int>{2}));
  // Fill: a budget too small for row 0's next step still buys a smaller step elsewhere.
  const auto fill = torch::tensor({{100.0, 3.0}, {100.0, 1.0}, {0.0, 1.0}}, torch::kDouble);
  // widths {2, 3, 8}: row 0 gains only at 8 (100/6 per bit, 6 bits), row 1 at 3 (2 per bit);
  // budget 2.5 over two rows: 1 bit to spend, too few for row 0's step, enough for row 1's.
  const RowAllocation f = allocate_row_widths(fill, {2, 3, 8}, 2.5);
  EXPECT_EQ(f.bits, (std::vector<int>{2, 3}));
  EXPECT_THROW_MESSAGE(allocate_row_widths(cost, w, 1.5), std::invalid_argument,
                       "below the narrowest");
  EXPECT_THROW_MESSAGE(check_row_widths({2, 2}), std::invalid_argument, "strictly increasing");
  EXPECT_THROW_MESSAGE(check_row_widths({2, 9}), std::invalid_argument, "0..8");
  EXPECT_THROW_MESSAGE(parse_row_sensitivity("fisher"), std::invalid_argument, "frequency, output");
  EXPECT_EQ(width_tag_bits({2, 3, 4, 8}), 2);
  EXPECT_EQ(width_tag_bits({2, 3, 4}), 2);
  EXPECT_EQ(width_tag_bits({2, 4}), 1);
}

TEST(RowWidths, FrequencyAndFisherSensitivitiesByHand) {
  const auto err = torch::tensor({{1.0f, 0.0f}, {0.0f, 2.0f}});
  const auto f = torch::tensor({0.5, 0.25}, torch::kDouble);
  auto s = frequency_sensitivity({err}, f);
  EXPECT_NEAR(s[0][0].item<double>(), 0.5, 1e-12);  // 0.5 · 1²
  EXPECT_NEAR(s[0][1].item<double>(), 1.0, 1e-12);  // 0.25 · 2²
  // Fed through F = [[1, 1], [1, -1]]: F δ_0 = (1, 1), F δ_1 = (2, −2).
  s = frequency_sensitivity({err, err * 2}, f, torch::tensor({{1.0f, 1.0f}, {1.0f, -1.0f}}));
  EXPECT_NEAR(s[0][0].item<double>(), 0.5 * 2, 1e-12);
  EXPECT_NEAR(s[0][1].item<double>(), 0.25 * 8, 1e-12);
  EXPECT_NEAR(s[1][1].item<double>(), 0.25 * 32, 1e-12);
  // Fisher: V = 2, one position h = (1, 0), W = 0, b = 0 → p = (½, ½), p(1−p) = ¼;
  // s_v = ½ · ¼ · (δ_v · h)² → row 0: ⅛ · 1 = 0.125, row 1: ⅛ · 0 = 0.
  const auto fs = fisher_sensitivity({err}, torch::tensor({{1.0f, 0.0f}}), torch::zeros({2, 2}),
                                     torch::zeros({2}));
  EXPECT_NEAR(fs[0][0].item<double>(), 0.125, 1e-7);
  EXPECT_NEAR(fs[0][1].item<double>(), 0.0, 1e-12);
  // Against the formula on random data, across position blocks.
  torch::manual_seed(1);
  const auto h = torch::randn({37, 5}), W = torch::randn({11, 5}), b = torch::randn({11});
  const auto e = torch::randn({11, 5}) * 0.1;
  const auto p = torch::softmax(torch::addmm(b, h, W.t()), 1).to(torch::kDouble);
  const auto want = (0.5 / 37) * (p * (1 - p) * h.mm(e.t()).to(torch::kDouble).pow(2)).sum(0);
  for (int64_t block : {1, 8, 512})
    EXPECT_LT(lmquant::test::max_rel_diff(fisher_sensitivity({e}, h, W, b, block)[0], want), 1e-5);
  const auto fr = smoothed_frequency(torch::tensor({2, 0}, torch::kLong), 3);
  EXPECT_TRUE(torch::allclose(fr, torch::tensor({0.6, 0.2, 0.2}, torch::kDouble)));
  EXPECT_THROW(smoothed_frequency(torch::tensor({1, 1, 1}, torch::kLong), 2),
               std::invalid_argument);
}

namespace {

struct Tiny {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LoadedModel src;
  Calibration cal;
  Tiny() {
    src.model = lmquant::test::tiny_lstm(corpus.vocab.size(), 9);
    src.path = "src.lmq", src.file_sha256 = "cafe";
    CalibrationOptions o;
    o.sequences = 32, o.length = 5, o.warmup = 3;
    cal = make_calibration(corpus.train, o);
  }
};

QuantConfig rows_config(double budget, Granularity g = Granularity::kRow) {
  QuantConfig q;
  q.bits = 4;
  q.clip = ClipRule::parse("mse");
  q.granularity = g;
  q.row_widths = {2, 3, 4, 8};
  q.row_budget = budget;
  return q;
}

}  // namespace

TEST(RowWidths, QuantizeModelGivesEachVocabularyRowItsWidth) {
  Tiny t;
  const int64_t V = t.src.model->config().vocab;
  for (auto g : {Granularity::kRow, Granularity::Group(5)}) {
    for (auto sens : {RowSensitivity::kOutput, RowSensitivity::kFrequency}) {
      QuantConfig q = rows_config(2.5, g);
      q.row_sensitivity = sens;
      const QuantizedModel qm = quantize_model(t.src.model, q, &t.cal);
      int seen = 0;
      for (size_t i = 0; i < qm.tensors.size(); ++i) {
        const auto& m = qm.tensors[i];
        const auto& rep = qm.matrices[i];
        if (m.name != "embedding" && m.name != "decoder") {
          EXPECT_FALSE(m.row_bits.defined()) << m.name;
          EXPECT_EQ(rep.mean_bits, 4);
          continue;
        }
        ++seen;
        ASSERT_TRUE(m.row_bits.defined()) << m.name;
        EXPECT_EQ(m.row_bits.numel(), V);
        EXPECT_LE(rep.mean_bits, 2.5 + 1e-9);
        EXPECT_GT(rep.mean_bits, 2.0);  // the budget is spent
        int64_t n = 0;
        for (const auto& [b, k] : rep.rows_at_bits) n += k;
        EXPECT_EQ(n, V);
        // Every row's codes fit its width, and its steps are those of a quantization at it.
        for (int64_t r = 0; r < V; ++r) {
          const int b = m.row_bits[r].item<int>();
          const int qmax = UniformQuantizer(b).qmax();
          EXPECT_LE(m.codes[r].abs().max().item<int>(), qmax) << m.name << " row " << r;
        }
      }
      EXPECT_EQ(seen, 2);
      // Accounting: codes at their widths + 2 bits per vocabulary row naming the width.
      double bits = 32.0 * static_cast<double>(qm.params_before);
      for (size_t i = 0; i < qm.tensors.size(); ++i) {
        const auto& m = qm.tensors[i];
        const auto& rep = qm.matrices[i];
        const double cols = static_cast<double>(m.codes.size(1));
        bits -= 32.0 * rep.params_before;
        bits += m.row_bits.defined()
                    ? m.row_bits.to(torch::kDouble).sum().item<double>() * cols + 2.0 * V
                    : 4.0 * rep.params_after;
        bits += scale_bits(g) * static_cast<double>(rep.groups);
      }
      EXPECT_NEAR(qm.size_bits, bits, 1e-6 * bits);
    }
  }
  // The widest budget is the widest width everywhere: the same codes as 8 bits per row. (By
  // frequency: a row's error norm falls with its width. The Fisher cost need not: this
  // untrained model's top-layer outputs are nearly collinear, and a row's 2-bit error can be
  // nearly orthogonal to them, so a few rows cost less at 2 bits than at 8 and stay there.)
  QuantConfig all8 = rows_config(8.0);
  all8.row_sensitivity = RowSensitivity::kFrequency;
  QuantConfig plain = rows_config(8.0);
  plain.row_widths.clear(), plain.row_budget = 0, plain.bits = 8;
  plain.targets = {Target::kEmbedding, Target::kDecoder};
  all8.targets = plain.targets;
  const auto a = quantize_model(t.src.model, all8, &t.cal);
  const auto b = quantize_model(t.src.model, plain, &t.cal);
  for (size_t i = 0; i < a.tensors.size(); ++i)
    EXPECT_TRUE(torch::equal(a.tensors[i].codes, b.tensors[i].codes)) << a.tensors[i].name;
  // A matrix named in matrix_bits keeps its one width.
  QuantConfig fixed = rows_config(2.5);
  fixed.matrix_bits["decoder"] = 3;
  for (const auto& m : quantize_model(t.src.model, fixed, &t.cal).tensors)
    EXPECT_EQ(m.row_bits.defined(), m.name == "embedding") << m.name;
  EXPECT_THROW_MESSAGE(quantize_model(t.src.model, rows_config(2.5)), std::invalid_argument,
                       "calibration");
}

TEST(RowWidths, ConfigurationJsonLabelAndRefusals) {
  QuantConfig q = rows_config(2.5);
  q.row_sensitivity = RowSensitivity::kFrequency;
  EXPECT_EQ(q.label(), "mse 4b row rows{2,3,4,8}@2.5 frequency");
  EXPECT_TRUE(q.needs_calibration());
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  QuantConfig bad = rows_config(2.5, Granularity::kTensor);
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "row or group:G");
  bad = rows_config(9);
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "between the narrowest");
  bad = rows_config(2.5);
  bad.row_widths = {4, 2};
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "strictly increasing");
  bad = QuantConfig{};
  bad.row_budget = 3;
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "needs row widths");
  bad = QuantConfig{};
  bad.gptq_embedding = true;
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "setting of gptq rounding");
}

TEST(RowWidths, FilesAndTheInt8EngineReadRowsOfMixedWidths) {
  Tiny t;
  lmquant::test::TempDir tmp;
  const QuantizedModel qm = quantize_model(t.src.model, rows_config(3.0), &t.cal);
  save_quantized(tmp.file("q.lmq"), t.src, qm);
  save_quantized(tmp.file("p.lmq"), t.src, qm, /*packed=*/true);
  for (const auto& file : {tmp.file("q.lmq"), tmp.file("p.lmq")}) {
    QuantizedFile f = read_quantized(file);
    ASSERT_EQ(f.matrices.size(), qm.tensors.size());
    for (size_t i = 0; i < qm.tensors.size(); ++i) {
      const auto& want = qm.tensors[i];
      const QuantizedMatrix* got = nullptr;
      for (const auto& m : f.matrices)
        if (m.name == want.name) got = &m;
      ASSERT_NE(got, nullptr) << want.name;
      EXPECT_TRUE(torch::equal(got->codes.to(torch::kShort), want.codes)) << file << want.name;
      EXPECT_EQ(got->row_bits.defined(), want.row_bits.defined());
      if (want.row_bits.defined()) EXPECT_TRUE(torch::equal(got->row_bits, want.row_bits));
    }
    EXPECT_TRUE(torch::equal(f.loaded.model->decoder_weight, qm.folded->decoder_weight));
  }
  EXPECT_LT(std::filesystem::file_size(tmp.file("p.lmq")),
            std::filesystem::file_size(tmp.file("q.lmq")));
  const auto e = lmquant::test::simulated_and_int8_engine(qm, tmp.file("p.lmq"), t.corpus.train);
  EXPECT_NEAR(e.int8_engine, e.simulated, 0.005 * e.simulated);
  // A packed file missing one width class is refused.
  Checkpoint ck = read_checkpoint(tmp.file("p.lmq"));
  std::vector<std::pair<std::string, torch::Tensor>> kept;
  for (auto& kv : ck.tensors)
    if (kv.first != "decoder.packed_w2") kept.push_back(kv);
  ck.tensors = kept;
  save_checkpoint(tmp.file("bad.lmq"), ck);
  EXPECT_THROW_MESSAGE(read_quantized(tmp.file("bad.lmq")), std::runtime_error, "2-bit rows");
}

TEST(RowWidths, GptqEmbeddingLowersTheErrorSeenThroughWih) {
  Tiny t;
  QuantConfig q;
  q.bits = 3;
  q.clip = ClipRule::parse("mse");
  q.granularity = Granularity::kRow;
  q.rounding = Rounding::kGptq;
  q.targets = {Target::kEmbedding};
  const auto nearest = quantize_model(t.src.model, q, &t.cal);
  q.gptq_embedding = true;
  EXPECT_EQ(q.label(), "gptq mse 3b row +embedding");
  const auto comp = quantize_model(t.src.model, q, &t.cal);
  const auto W = t.src.model->w_ih[0].detach();
  const auto E = t.src.model->encoder.detach();
  auto out_err = [&](const QuantizedModel& m) {
    return (E - m.folded->encoder).mm(W.t()).pow(2).sum().item<double>();
  };
  EXPECT_LT(out_err(comp), out_err(nearest));
  // ... at a larger plain error (it is not nearest rounding any more).
  EXPECT_GT((E - comp.folded->encoder).pow(2).sum().item<double>(),
            (E - nearest.folded->encoder).pow(2).sum().item<double>());
  // One-bit rows on the midrise grid, packed and read back.
  QuantConfig one = rows_config(2.0);
  one.grid = Grid::kMidrise;
  one.row_widths = {1, 2, 4};
  const auto qm1 = quantize_model(t.src.model, one, &t.cal);
  bool some_one_bit = false;
  for (const auto& m : qm1.tensors)
    if (m.row_bits.defined()) some_one_bit |= (m.row_bits == 1).any().item<bool>();
  EXPECT_TRUE(some_one_bit);
  lmquant::test::TempDir tmp;
  save_quantized(tmp.file("one.lmq"), t.src, qm1, /*packed=*/true);
  EXPECT_TRUE(
      torch::equal(read_quantized(tmp.file("one.lmq")).loaded.model->encoder, qm1.folded->encoder));
  QuantConfig bad = one;
  bad.grid = Grid::kMidtread;
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "2..16");
  // Row widths compose with it: each width's codes are compensated.
  q.row_widths = {2, 4}, q.row_budget = 3;
  const auto rows = quantize_model(t.src.model, q, &t.cal);
  EXPECT_TRUE(rows.tensors.front().row_bits.defined());
}

TEST(RowWidths, PredictedSizeIsTheAccountingAndTheBudgetItsInverse) {
  Tiny t;
  QuantConfig plain;
  plain.bits = 4, plain.granularity = Granularity::kRow;
  EXPECT_DOUBLE_EQ(predicted_size_bits(*t.src.model, plain),
                   quantize_model(t.src.model, plain).size_bits);
  QuantConfig g = plain;
  g.granularity = Granularity::Group(5), g.matrix_bits["decoder"] = 3, g.half_scales = true;
  EXPECT_DOUBLE_EQ(predicted_size_bits(*t.src.model, g), quantize_model(t.src.model, g).size_bits);
  // Row widths: exact when the allocation spends the budget (all rows at the widest here).
  QuantConfig r = rows_config(8.0);
  r.row_sensitivity = RowSensitivity::kFrequency;
  EXPECT_DOUBLE_EQ(predicted_size_bits(*t.src.model, r),
                   quantize_model(t.src.model, r, &t.cal).size_bits);
  r.row_budget = 2.5;
  EXPECT_GE(predicted_size_bits(*t.src.model, r) + 1e-6,
            quantize_model(t.src.model, r, &t.cal).size_bits);
  EXPECT_NEAR(row_budget_for_size(*t.src.model, r, predicted_size_bits(*t.src.model, r)), 2.5,
              1e-9);
  QuantConfig o = plain;
  o.method = Method::kOcs, o.expand_ratio = 0.1;
  EXPECT_THROW(predicted_size_bits(*t.src.model, o), std::invalid_argument);
}

TEST(RowWidths, PerMatrixGranularitiesAndRowBudgets) {
  Tiny t;
  QuantConfig q = rows_config(2.5);
  q.matrix_granularity = {{"input.l0", Granularity::Group(5)}, {"decoder", Granularity::Group(4)}};
  q.matrix_row_budget = {{"embedding", 2.2}, {"decoder", 3.0}};
  EXPECT_EQ(q.label(),
            "mse 4b row decoder=group:4 input.l0=group:5 rows{2,3,4,8}@2.5 decoder@3 "
            "embedding@2.2");
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  const QuantizedModel qm = quantize_model(t.src.model, q, &t.cal);
  const int64_t cols = t.src.model->config().hidden;
  for (const auto& m : qm.tensors) {
    const int64_t want = m.name == "decoder" ? 4 : m.name == "input.l0" ? 5 : cols;
    EXPECT_EQ(m.group_size, want) << m.name;
    if (m.name == "embedding")
      EXPECT_LE(m.row_bits.to(torch::kDouble).mean().item<double>(), 2.2 + 1e-9);
    if (m.name == "decoder")
      EXPECT_LE(m.row_bits.to(torch::kDouble).mean().item<double>(), 3.0 + 1e-9);
  }
  EXPECT_GE(predicted_size_bits(*t.src.model, q) + 1e-6, qm.size_bits);
  // Exact at the widths the allocation spent (a row whose wider width gains nothing stays
  // narrower); group steps count 16 bits, row steps 32.
  QuantConfig wide = q;
  wide.matrix_row_budget = {{"embedding", 8}, {"decoder", 8}};
  const QuantizedModel qw = quantize_model(t.src.model, wide, &t.cal);
  QuantConfig spent = wide;
  for (const auto& m : qw.tensors)
    if (m.row_bits.defined())
      spent.matrix_row_budget[m.name] = m.row_bits.to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(predicted_size_bits(*t.src.model, spent), qw.size_bits, 1e-6);
  QuantConfig row = wide;
  row.matrix_granularity.clear();
  const double V = t.src.model->config().vocab, H = cols;
  const double dec_groups = V * std::ceil(H / 4), in_groups = 4 * H * std::ceil(H / 5);
  EXPECT_DOUBLE_EQ(predicted_size_bits(*t.src.model, wide) - predicted_size_bits(*t.src.model, row),
                   16 * (dec_groups + in_groups) - 32 * (V + 4 * H));
  // The packed file keeps each matrix's groups.
  lmquant::test::TempDir tmp;
  save_quantized(tmp.file("p.lmq"), t.src, qm, /*packed=*/true);
  const QuantizedFile f = read_quantized(tmp.file("p.lmq"));
  EXPECT_TRUE(torch::equal(f.loaded.model->decoder_weight, qm.folded->decoder_weight));
  EXPECT_TRUE(torch::equal(f.loaded.model->w_ih[0], qm.folded->w_ih[0]));
  EXPECT_TRUE(torch::equal(f.loaded.model->encoder, qm.folded->encoder));
  // Refusals name the matrix.
  QuantConfig bad = q;
  bad.matrix_row_budget["input.l0"] = 3;
  EXPECT_THROW_MESSAGE(quantize_model(t.src.model, bad, &t.cal), std::invalid_argument,
                       "matrix input.l0, which has no row widths");
  bad = q;
  bad.matrix_row_budget["decoder"] = 9;
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "row budget of matrix decoder");
  bad = q;
  bad.matrix_granularity["embedding"] = Granularity::kTensor;
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "(matrix embedding)");
  bad = q;
  bad.matrix_granularity["nope"] = Granularity::kRow;
  EXPECT_THROW_MESSAGE(quantize_model(t.src.model, bad, &t.cal), std::invalid_argument, "nope");
  bad = rows_config(2.5);
  bad.row_widths.clear(), bad.row_budget = 0;
  bad.matrix_row_budget["decoder"] = 3;
  EXPECT_THROW_MESSAGE(bad.validate(), std::invalid_argument, "needs row widths");
}

TEST(RowWidths, BlocksOfRowsGiveTheWholeMatrixsResult) {
  // quantize_rows streams a vocabulary matrix in blocks of rows; every block size must give the
  // whole matrix's codes, steps and widths (frequency, feed and the Fisher's per-row GPTQ; with a
  // rotation and the rounding spread's jitter).
  Tiny t;
  const auto mc = t.src.model->config();
  CalibrationOptions o;
  o.sequences = 32, o.length = 5, o.warmup = 3;
  for (int variant = 0; variant < 3; ++variant) {
    QuantConfig q = rows_config(2.5, variant == 1 ? Granularity::Group(5) : Granularity::kRow);
    q.row_sensitivity = RowSensitivity::kFrequency;
    q.repeat = variant == 1 ? 2 : 0;
    q.rotate = variant == 2;
    for (const char* name : {"embedding", "decoder"}) {
      std::vector<MatrixPlan> plans = plan_matrices(mc, q);
      const MatrixPlan* plan = nullptr;
      for (const auto& p : plans)
        if (p.matrix.name == name) plan = &p;
      ASSERT_NE(plan, nullptr);
      RowData data;
      data.freq = smoothed_frequency(t.cal.token_counts, mc.vocab);
      data.feed = t.src.model->w_ih[0].detach();
      const auto& w = plan->matrix.weight(*t.src.model);
      const auto whole = quantize_rows(*plan, w, q, data, {}, nullptr, w.size(0));
      for (int64_t block : {int64_t{1}, int64_t{7}, int64_t{32}}) {
        const auto part = quantize_rows(*plan, w, q, data, {}, nullptr, block);
        EXPECT_TRUE(torch::equal(part.q.codes, whole.q.codes)) << name << " block " << block;
        EXPECT_TRUE(torch::equal(part.q.step, whole.q.step)) << name << " block " << block;
        EXPECT_TRUE(torch::equal(part.q.row_bits, whole.q.row_bits)) << name;
        EXPECT_TRUE(torch::equal(part.folded, whole.folded)) << name << " block " << block;
      }
    }
  }
  // The Fisher's per-row rounding, and its sensitivity from normalizers computed once.
  QuantConfig f = rows_config(2.5);
  f.rounding = Rounding::kGptq, f.fisher_decoder = true;
  const auto plans = plan_matrices(mc, f);
  const MatrixPlan& dec = plans[1];
  ASSERT_EQ(dec.matrix.name, "decoder");
  RowData data;
  data.decoder_h = calibration_inputs(*t.src.model, t.cal, {"decoder"}).at("decoder");
  data.decoder_bias = t.src.model->decoder_bias.detach();
  const auto& w = t.src.model->decoder_weight;
  const DecoderFisher fisher(data.decoder_h, w, data.decoder_bias);
  const auto whole = quantize_rows(dec, w, f, data, {}, &fisher, w.size(0));
  const auto part = quantize_rows(dec, w, f, data, {}, &fisher, 9);
  EXPECT_TRUE(torch::equal(part.q.row_bits, whole.q.row_bits));
  EXPECT_TRUE(torch::allclose(part.folded, whole.folded));
  const std::vector<torch::Tensor> errors = {torch::randn(w.sizes()) * 0.01f};
  const auto lse = decoder_log_normalizer(data.decoder_h, w, data.decoder_bias);
  const auto exact = fisher_sensitivity(errors, data.decoder_h, w, data.decoder_bias);
  const auto rows =
      fisher_sensitivity_rows({errors[0].narrow(0, 5, 20)}, data.decoder_h, w.narrow(0, 5, 20),
                              data.decoder_bias.narrow(0, 5, 20), lse);
  EXPECT_TRUE(torch::allclose(rows, exact.narrow(1, 5, 20), 1e-4, 1e-12));
}

// Width 0 (quant/row_widths.h): a row the allocation gives no bits is the zero row — codes 0,
// step 0 — and costs only its width tag (and its stored step); quantized and packed files and the
// int8 engine carry it. Checked with rounding to nearest and with the round-four recipe (gptq,
// midrise, rotation, the decoder's Fisher, the embedding against W_ih), whose codes come from
// fisher_codes for every width but 0.
TEST(RowWidths, ZeroBitRowsAreTheZeroRow) {
  // The allocation's worked case: W = {0, 2}, B = 1, s_0 = (5, 1), s_1 = (0.5, 0.1): the steps
  // gain 2 and 0.2 per bit; two bits to spend take row 0's → widths (2, 0), predicted 1.5.
  const auto cost = torch::tensor({5.0, 0.5, 1.0, 0.1}, torch::kDouble).view({2, 2});
  const RowAllocation a = allocate_row_widths(cost, {0, 2}, 1.0);
  EXPECT_EQ(a.bits, (std::vector<int>{2, 0}));
  EXPECT_DOUBLE_EQ(a.predicted, 1.5);
  EXPECT_THROW_MESSAGE(check_row_widths({-1, 2}), std::invalid_argument, "0..8");

  Tiny t;
  const int64_t V = t.src.model->config().vocab;
  QuantConfig nearest = rows_config(1.0);
  nearest.row_widths = {0, 2, 4};
  nearest.row_sensitivity = RowSensitivity::kFrequency;
  QuantConfig recipe = rows_config(1.0);
  recipe.row_widths = {0, 1, 2, 3};
  recipe.rounding = Rounding::kGptq;
  recipe.grid = Grid::kMidrise;
  recipe.half_scales = true;
  recipe.rotate = true;
  recipe.fisher_decoder = true;
  recipe.gptq_embedding = true;
  EXPECT_EQ(QuantConfig::from_json(recipe.to_json()), recipe);
  lmquant::test::TempDir tmp;
  for (const QuantConfig& q : {nearest, recipe}) {
    const QuantizedModel qm = quantize_model(t.src.model, q, &t.cal);
    int seen = 0;
    for (size_t i = 0; i < qm.tensors.size(); ++i) {
      const auto& m = qm.tensors[i];
      const auto& rep = qm.matrices[i];
      if (!m.row_bits.defined()) continue;
      ++seen;
      const auto zero = (m.row_bits == 0).nonzero().view({-1});
      ASSERT_GT(zero.numel(), 0) << q.label() << " " << m.name;
      EXPECT_LT(zero.numel(), V) << q.label() << " " << m.name;
      EXPECT_EQ(rep.rows_at_bits.at(0), zero.numel());
      EXPECT_LE(rep.mean_bits, 1.0 + 1e-9);
      EXPECT_EQ(m.codes.index_select(0, zero).abs().max().item<int>(), 0) << m.name;
      EXPECT_EQ(m.step.index_select(0, zero).abs().max().item<float>(), 0.0f) << m.name;
      const auto w = m.name == "embedding" ? qm.folded->encoder : qm.folded->decoder_weight;
      EXPECT_EQ(w.index_select(0, zero).abs().max().item<float>(), 0.0f) << m.name;
      const auto kept = (m.row_bits > 0).nonzero().view({-1});
      EXPECT_GT(w.index_select(0, kept).abs().min().item<float>() +
                    w.index_select(0, kept).abs().max().item<float>(),
                0.0f);
    }
    EXPECT_EQ(seen, 2);
    save_quantized(tmp.file("q.lmq"), t.src, qm);
    save_quantized(tmp.file("p.lmq"), t.src, qm, /*packed=*/true);
    EXPECT_EQ(read_checkpoint(tmp.file("p.lmq")).find("decoder.packed_w0"), nullptr);
    for (const auto& file : {tmp.file("q.lmq"), tmp.file("p.lmq")}) {
      QuantizedFile f = read_quantized(file);
      for (const auto& want : qm.tensors)
        for (const auto& got : f.matrices)
          if (got.name == want.name) {
            EXPECT_TRUE(torch::equal(got.codes.to(torch::kShort), want.codes)) << file;
            if (want.row_bits.defined()) EXPECT_TRUE(torch::equal(got.row_bits, want.row_bits));
          }
      EXPECT_TRUE(torch::equal(f.loaded.model->decoder_weight, qm.folded->decoder_weight));
      EXPECT_TRUE(torch::equal(f.loaded.model->encoder, qm.folded->encoder));
    }
    const auto e = lmquant::test::simulated_and_int8_engine(qm, tmp.file("p.lmq"), t.corpus.train);
    EXPECT_NEAR(e.int8_engine, e.simulated, 0.005 * e.simulated);
  }
}
