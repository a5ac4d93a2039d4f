// The vocabulary of quantization (quant/quant_types.h): every enum round-trips through its
// string, and a bad string's error lists the valid values.
#include <cmath>

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
                       "valid values: all, embedding, input, recurrent");
  EXPECT_THROW_MESSAGE(parse_targets(""), std::invalid_argument, "no targets given");
}

TEST(QuantTypes, GroupStepsAreStoredAsFloat16) {
  const auto g = Granularity::Group(32);
  EXPECT_EQ(scale_bits(g), 16);
  EXPECT_EQ(scale_bits(Granularity::kRow), 32);
  EXPECT_EQ(scale_bits(Granularity::kTensor), 32);
  // 0.1 in float16: 1638/16384 = 0.0999755859375 (significand 1.1001100110 × 2^-4).
  EXPECT_EQ(stored_step(0.1f, g), 0.0999755859375f);
  EXPECT_EQ(stored_step(0.1f, Granularity::kRow), 0.1f);
  EXPECT_EQ(stored_step(0.0f, g), 0.0f);  // an all-zero group
  // Below float16's smallest subnormal 2^-24 the step stays positive.
  EXPECT_EQ(stored_step(1e-9f, g), std::ldexp(1.0f, -24));
  EXPECT_THROW_MESSAGE(stored_step(7e4f, g), std::invalid_argument, "float16");
}
