// The budget solver (quant/bit_allocation.h): meets the budget exactly on a hand fixture, never
// exceeds it, spends what it can, and refuses a budget below the 2-bit floor.
#include "quant/bit_allocation.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

std::map<int, double> deltas(std::initializer_list<double> from2to8) {
  std::map<int, double> d;
  int b = 2;
  for (double v : from2to8) d[b++] = v;
  return d;
}

}  // namespace

TEST(BitAllocation, HeaderExampleMeetsTheBudgetExactly) {
  // Two matrices of 100 weights with one 32-bit scale each (0.32 bits per weight of scales).
  // "a" is more sensitive than "b" at 3 bits: (3, 4) would cost 0.9 + 0.1, (4, 3) costs
  // 0.2 + 0.3, so the greedy ends at a = 4, b = 3 and the average is exactly 3.82.
  std::vector<MatrixCost> c = {{"a", 100, 1, deltas({3.0, 0.9, 0.2, 0.05, 0.02, 0.01, 0.0})},
                               {"b", 100, 1, deltas({2.0, 0.3, 0.1, 0.05, 0.02, 0.01, 0.0})}};
  const auto a = allocate_bits(c, 3.82);
  EXPECT_EQ(a.bits.at("a"), 4);
  EXPECT_EQ(a.bits.at("b"), 3);
  EXPECT_DOUBLE_EQ(a.average_bits, 3.82);
  EXPECT_DOUBLE_EQ(a.predicted_delta, 0.5);
}

TEST(BitAllocation, NeverExceedsAndCannotAddABit) {
  // A large insensitive matrix and two small sensitive ones (like decoder vs LSTM matrices).
  std::vector<MatrixCost> c = {{"big", 10000, 100, deltas({1.0, 0.4, 0.1, 0.03, 0.01, 0.0, 0.0})},
                               {"s1", 800, 8, deltas({2.0, 0.8, 0.3, 0.1, 0.05, 0.02, 0.0})},
                               {"s2", 800, 8, deltas({4.0, 1.5, 0.5, 0.2, 0.1, 0.05, 0.0})}};
  for (double budget : {2.5, 2.6, 3.0, 3.33, 4.0, 7.9, 8.3}) {
    const auto a = allocate_bits(c, budget);
    EXPECT_LE(a.average_bits, budget + 1e-9) << budget;
    for (const auto& m : c) {
      if (a.bits.at(m.name) == 8) continue;
      auto more = a.bits;
      ++more[m.name];
      EXPECT_GT(average_bits(c, more), budget) << budget << ": " << m.name << " could take a bit";
    }
    // The small sensitive matrices never get fewer bits than the big one.
    EXPECT_GE(a.bits.at("s2"), a.bits.at("big")) << budget;
  }
  EXPECT_THROW_MESSAGE(allocate_bits(c, 2.01), std::invalid_argument, "below");
  c[0].delta.erase(5);
  EXPECT_THROW_MESSAGE(allocate_bits(c, 4), std::invalid_argument, "no measured loss for big at 5");
}
