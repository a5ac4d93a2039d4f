// Bit-packed codes (quant/bit_packing.h): the header's worked example byte by byte, round trips
// for every width 2..8 at odd counts, and refusal of out-of-range codes and short buffers.
#include "quant/bit_packing.h"

#include "test_utils.h"

using namespace lmquant;

TEST(BitPacking, HeaderExampleByteByByte) {
  // b = 3, codes [−3, 0, 3] → u = [1, 4, 7] → 0xE1, 0x01.
  auto p = pack_codes(torch::tensor({-3, 0, 3}, torch::kShort), 3);
  ASSERT_EQ(p.numel(), 2);
  EXPECT_EQ(p[0].item<int>(), 0xE1);
  EXPECT_EQ(p[1].item<int>(), 0x01);
  // b = 4: two per byte, the first in the low nibble: [−7, 7] → u = [1, 15] → 0xF1.
  auto p4 = pack_codes(torch::tensor({-7, 7}, torch::kShort), 4);
  ASSERT_EQ(p4.numel(), 1);
  EXPECT_EQ(p4[0].item<int>(), 0xF1);
  EXPECT_EQ(packed_bytes(13, 3), 5);  // 39 bits
  EXPECT_EQ(packed_bytes(0, 5), 0);
}

TEST(BitPacking, RoundTripsEveryWidthAtOddCounts) {
  torch::manual_seed(11);
  for (int bits = 2; bits <= 8; ++bits) {
    const int qmax = (1 << (bits - 1)) - 1;
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{13}, int64_t{1001}}) {
      auto codes = torch::randint(-qmax, qmax + 1, {n}, torch::kShort);
      codes[0] = -qmax;  // both ends of the range
      codes[n - 1] = qmax;
      auto p = pack_codes(codes, bits);
      EXPECT_EQ(p.numel(), (n * bits + 7) / 8);
      auto back = unpack_codes(p, n, bits);
      EXPECT_EQ(back.scalar_type(), torch::kChar);
      EXPECT_TRUE(torch::equal(back.to(torch::kShort), codes)) << bits << " bits, n = " << n;
    }
  }
}

TEST(BitPacking, RefusesBadCodesWidthsAndShortBuffers) {
  EXPECT_THROW_MESSAGE(pack_codes(torch::tensor({4}, torch::kShort), 3), std::invalid_argument,
                       "outside the 3-bit midtread range [-3, 3]");
  EXPECT_THROW_MESSAGE(pack_codes(torch::tensor({0}, torch::kShort), 9), std::invalid_argument,
                       "2..8 bits");
  auto p = pack_codes(torch::tensor({1, 2, 3, -1, -2}, torch::kShort), 4);  // 3 bytes
  EXPECT_THROW_MESSAGE(unpack_codes(p.narrow(0, 0, 2), 5, 4), std::runtime_error,
                       "need 3 bytes, got 2");
  // u = 0 is no code: a zeroed buffer is corrupt.
  EXPECT_THROW_MESSAGE(unpack_codes(torch::zeros({2}, torch::kByte), 4, 4), std::runtime_error,
                       "corrupt");
}

TEST(BitPacking, MidriseCodesUseEveryStoredValue) {
  // bit_packing.h: b = 2, q = [−3, −1, 1, 3] → u = [0, 1, 2, 3] → 0b11100100 = 0xE4.
  auto p = pack_codes(torch::tensor({-3, -1, 1, 3}, torch::kShort), 2, Grid::kMidrise);
  ASSERT_EQ(p.numel(), 1);
  EXPECT_EQ(p[0].item<int>(), 0xE4);
  torch::manual_seed(12);
  for (int bits = 2; bits <= 7; ++bits) {
    const int qmax = (1 << bits) - 1;
    auto codes = torch::randint(0, 1 << bits, {1001}, torch::kShort) * 2 - qmax;  // odd
    codes[0] = -qmax, codes[1000] = qmax;
    auto back = unpack_codes(pack_codes(codes, bits, Grid::kMidrise), 1001, bits, Grid::kMidrise);
    EXPECT_TRUE(torch::equal(back.to(torch::kShort), codes)) << bits;
    // A stored 0 is a code here (−qmax), unlike the midtread layout.
    EXPECT_EQ(unpack_codes(torch::zeros({1}, torch::kByte), 1, bits, Grid::kMidrise)[0].item<int>(),
              -qmax);
  }
  EXPECT_THROW_MESSAGE(pack_codes(torch::tensor({2}, torch::kShort), 3, Grid::kMidrise),
                       std::invalid_argument, "odd codes");
  EXPECT_THROW_MESSAGE(pack_codes(torch::tensor({1}, torch::kShort), 8, Grid::kMidrise),
                       std::invalid_argument, "1..7");
  // One bit: eight signs per byte, −1 → 0, 1 → 1, LSB first.
  auto signs = torch::tensor({1, -1, -1, 1, 1, 1, -1, 1, -1}, torch::kShort);
  auto p1 = pack_codes(signs, 1, Grid::kMidrise);
  ASSERT_EQ(p1.numel(), 2);
  EXPECT_EQ(p1[0].item<int>(), 0b10111001);
  EXPECT_EQ(p1[1].item<int>(), 0);
  EXPECT_TRUE(torch::equal(unpack_codes(p1, 9, 1, Grid::kMidrise).to(torch::kShort), signs));
  EXPECT_THROW(pack_codes(signs, 1), std::invalid_argument);  // midtread has no 1-bit grid
}
