// The configuration (quant/quant_config.h): names of per-matrix settings checked against the
// matrix table, the plot family, and JSON with a size in bits per weight.
#include "quant/quant_config.h"

#include "test_utils.h"

using namespace lmquant;

TEST(QuantConfig, PerMatrixSettingsAreMatrixNamesAndVocabularyRulesAskTheTable) {
  QuantConfig q;
  q.matrix_bits["input.lx"] = 3;
  EXPECT_THROW_MESSAGE(q.validate(), std::invalid_argument, "is not a matrix name");
  q.matrix_bits = {{"recurrent.l1", 3}};
  EXPECT_NO_THROW(q.validate());
  // Row widths need row or group scales on the vocabulary matrices, whatever their name.
  q.row_widths = {2, 4};
  q.row_budget = 3;
  q.granularity = Granularity::kRow;
  q.matrix_granularity = {{"embedding+decoder", Granularity::kTensor}};
  EXPECT_THROW_MESSAGE(q.validate(), std::invalid_argument, "matrix embedding+decoder");
  q.matrix_granularity = {{"input.l0", Granularity::kTensor}};  // not a vocabulary matrix
  EXPECT_NO_THROW(q.validate());
  EXPECT_TRUE(is_vocabulary(parse_matrix_name("decoder")));
  EXPECT_FALSE(is_vocabulary(parse_matrix_name("input.l12")));
  EXPECT_THROW(parse_matrix_name("input.l01"), std::invalid_argument);
}

TEST(QuantConfig, FamilyIsShortAndTheLabelComplete) {
  QuantConfig q;
  q.rounding = Rounding::kGptq;
  q.clip = ClipRule::parse("percentile:99.99");
  q.granularity = Granularity::kRow;
  q.grid = Grid::kMidrise;
  q.half_scales = true;
  q.row_widths = {1, 2, 3, 4, 5, 6, 7};
  q.row_budget = 2.19844;
  q.rotate = true;
  q.fisher_decoder = true;
  EXPECT_EQ(q.family(), "gptq percentile:99.99 row rows rot fisher");
  EXPECT_EQ(q.label(),
            "gptq percentile:99.99 4b row midrise f16 rot rows{1,2,3,4,5,6,7}@2.19844 "
            "+decoder(fisher)");
  q.bits_per_weight = 2.5;
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  EXPECT_NE(q.label().find("@2.19844 =2.5b/w"), std::string::npos) << q.label();
  q.row_budget = 0;  // as asked: the budget is solved when quantizing
  EXPECT_NO_THROW(q.validate());
  EXPECT_EQ(QuantConfig::from_json(q.to_json()), q);
  q.bits_per_weight = -1;
  EXPECT_THROW_MESSAGE(q.validate(), std::invalid_argument, "positive");
}
