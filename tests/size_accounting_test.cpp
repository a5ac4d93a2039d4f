// Size accounting (quant/size_accounting.h): the header's worked example on a model, bits per
// weight solved into a row budget, its reachable range, and quantize_model meeting a size.
#include "quant/size_accounting.h"

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "lm/matrices.h"
#include "quant/quantize_model.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

// Only the embedding quantized, rows at {2, 4} bits with 32-bit row scales: the header's
// example, with R = every other weight of the model kept float.
QuantConfig embedding_rows(double budget) {
  QuantConfig q;
  q.targets = parse_targets("embedding");
  q.granularity = Granularity::kRow;
  q.row_widths = {2, 4};
  q.row_budget = budget;
  return q;
}

}  // namespace

TEST(SizeAccounting, WorkedExampleOfTheHeader) {
  LstmLmConfig c;
  c.vocab = 2, c.emb = 4, c.hidden = 3, c.layers = 1;
  const LstmLm model(c);
  const double n = static_cast<double>(stored_parameter_count(*model));
  const double rest = n - 8;  // the 2 × 4 embedding is quantized
  // size(B) = 32 R + 8 B + 2 · 1 (width tags) + 2 · 32 (row scales).
  for (double b : {2.0, 3.0, 4.0})
    EXPECT_DOUBLE_EQ(predicted_size_bits(*model, embedding_rows(b)), 32 * rest + 8 * b + 2 + 64);
  const auto [lo, hi] = reachable_bits_per_weight(*model, embedding_rows(2));
  EXPECT_DOUBLE_EQ(lo, (32 * rest + 16 + 66) / n);
  EXPECT_DOUBLE_EQ(hi, (32 * rest + 32 + 66) / n);
  // A T in range gives B = (T · n − a) / 8.
  const double t = (lo + hi) / 2;
  EXPECT_NEAR(row_budget_for_bits_per_weight(*model, embedding_rows(2), t),
              (t * n - (32 * rest + 66)) / 8, 1e-9);
  // Out of range: the error says the reachable range.
  EXPECT_THROW_MESSAGE(row_budget_for_bits_per_weight(*model, embedding_rows(2), hi + 0.01),
                       std::invalid_argument, "out of reach");
  EXPECT_THROW_MESSAGE(row_budget_for_bits_per_weight(*model, embedding_rows(2), lo - 0.01),
                       std::invalid_argument, "bits per weight");
  QuantConfig none;
  EXPECT_THROW_MESSAGE(reachable_bits_per_weight(*model, none), std::invalid_argument,
                       "row widths");
}

TEST(SizeAccounting, QuantizeModelMeetsBitsPerWeight) {
  const Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  const LstmLm model = lmquant::test::tiny_lstm(corpus.vocab.size(), 3);
  CalibrationOptions co;
  co.sequences = 4;
  const Calibration cal = make_calibration(corpus.train, co);
  QuantConfig q;
  q.bits = 4;
  q.granularity = Granularity::kRow;
  q.row_widths = {1, 2, 3, 4, 7};
  q.grid = Grid::kMidrise;
  q.row_sensitivity = RowSensitivity::kFrequency;
  q.bits_per_weight = 7.0;  // the tiny model reaches 6.27..8.38
  q.calib_sequences = 4;
  EXPECT_NO_THROW(q.validate());  // a size instead of a budget
  const QuantizedModel qm = quantize_model(model, q, &cal);
  const double bpw = qm.size_bits / static_cast<double>(qm.params_before);
  EXPECT_LE(bpw, 7.0 + 1e-9);
  EXPECT_GT(bpw, 6.9);  // the allocation spends nearly all of the budget
  // The applied configuration carries the solved budget, the size it was solved for, and its
  // predicted size is T exactly.
  EXPECT_EQ(qm.asked.row_budget, 0);
  EXPECT_GT(qm.config.row_budget, 1);
  EXPECT_EQ(qm.config.bits_per_weight, 7.0);
  EXPECT_NEAR(predicted_size_bits(*model, qm.config) / static_cast<double>(qm.params_before), 7.0,
              1e-9);
  EXPECT_NE(qm.config.label().find("=7b/w"), std::string::npos) << qm.config.label();
  EXPECT_EQ(QuantConfig::from_json(qm.asked.to_json()), qm.asked);
  // Unreachable T: an error with the range.
  q.bits_per_weight = 40;
  EXPECT_THROW_MESSAGE(quantize_model(model, q, &cal), std::invalid_argument, "takes");
  QuantConfig plain;
  plain.bits_per_weight = 3;
  EXPECT_THROW_MESSAGE(plain.validate(), std::invalid_argument, "needs row widths");
}
