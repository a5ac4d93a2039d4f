// The vocabulary of quantization (quant/quant_types.h): every enum round-trips through its
// string, and a bad string's error lists the valid values.
#include "quant/quant_types.h"
#include "test_utils.h"

using namespace lmquant;

TEST(QuantTypes, RoundTripsAndListsValidValues) {
  for (auto g : {Granularity::kTensor, Granularity::kRow, Granularity::kGate})
    EXPECT_EQ(parse_granularity(to_string(g)), g);
  for (auto m : {Method::kFloat, Method::kClip, Method::kOcs}) EXPECT_EQ(parse_method(to_string(m)), m);
  for (auto t : {Target::kEmbedding, Target::kInput, Target::kRecurrent, Target::kDecoder})
    EXPECT_EQ(parse_target(to_string(t)), t);
  EXPECT_EQ(parse_targets("all").size(), 4u);
  EXPECT_EQ(to_string(parse_targets("recurrent,embedding,recurrent")), "recurrent,embedding");
  EXPECT_THROW_MESSAGE(parse_granularity("channel"), std::invalid_argument,
                       "valid values: tensor, row, gate");
  EXPECT_THROW_MESSAGE(parse_method("gptq"), std::invalid_argument, "valid values: float, clip, ocs");
  EXPECT_THROW_MESSAGE(parse_targets("bias"), std::invalid_argument,
                       "valid values: all, embedding, input, recurrent, decoder");
  EXPECT_THROW_MESSAGE(parse_targets(""), std::invalid_argument, "no targets given");
}
