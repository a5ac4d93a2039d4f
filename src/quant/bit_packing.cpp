#include "quant/bit_packing.h"

#include <stdexcept>
#include <string>

namespace lmquant {
namespace {

void check_bits(int bits, Grid grid) {
  if (bits < (grid == Grid::kMidrise ? 1 : 2) || bits > 8)
    throw std::invalid_argument("packed codes take 2..8 bits (midrise 1..7), got " +
                                std::to_string(bits));
}

}  // namespace

int64_t packed_bytes(int64_t n, int bits) { return (n * bits + 7) / 8; }

torch::Tensor pack_codes(const torch::Tensor& codes, int bits, Grid grid) {
  check_bits(bits, grid);
  const UniformQuantizer quantizer(bits, grid);  // validates the midrise width
  const bool midrise = grid == Grid::kMidrise;
  const auto c = codes.reshape({-1}).to(torch::kCPU, torch::kInt).contiguous();
  const int64_t n = c.numel();
  const int32_t qmax = quantizer.qmax(), offset = midrise ? qmax : qmax + 1;
  auto out = torch::zeros({packed_bytes(n, bits)}, torch::kByte);
  const int32_t* q = c.data_ptr<int32_t>();
  uint8_t* p = out.data_ptr<uint8_t>();
  uint64_t acc = 0;  // bits not yet written, LSB first
  int filled = 0;
  int64_t byte = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (q[i] < -qmax || q[i] > qmax || (midrise && q[i] % 2 == 0))
      throw std::invalid_argument(
          "code " + std::to_string(q[i]) + " at index " + std::to_string(i) + " is outside the " +
          std::to_string(bits) + "-bit " + to_string(grid) + " range [" + std::to_string(-qmax) +
          ", " + std::to_string(qmax) + "]" + (midrise ? " of odd codes" : ""));
    const int32_t u = midrise ? (q[i] + offset) / 2 : q[i] + offset;
    acc |= static_cast<uint64_t>(u) << filled;
    filled += bits;
    while (filled >= 8) {
      p[byte++] = static_cast<uint8_t>(acc & 0xFF);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) p[byte] = static_cast<uint8_t>(acc & 0xFF);
  return out;
}

torch::Tensor unpack_codes(const torch::Tensor& packed, int64_t n, int bits, Grid grid) {
  check_bits(bits, grid);
  const UniformQuantizer quantizer(bits, grid);
  const bool midrise = grid == Grid::kMidrise;
  if (n < 0) throw std::runtime_error("packed codes: negative count " + std::to_string(n));
  const auto p8 = packed.reshape({-1}).to(torch::kCPU, torch::kByte).contiguous();
  if (p8.numel() < packed_bytes(n, bits))
    throw std::runtime_error(
        "packed codes: " + std::to_string(n) + " codes of " + std::to_string(bits) + " bits need " +
        std::to_string(packed_bytes(n, bits)) + " bytes, got " + std::to_string(p8.numel()));
  const int32_t offset = midrise ? quantizer.qmax() : quantizer.qmax() + 1;
  const uint32_t mask = (1u << bits) - 1;
  auto out = torch::empty({n}, torch::kChar);
  int8_t* q = out.data_ptr<int8_t>();
  const uint8_t* p = p8.data_ptr<uint8_t>();
  uint64_t acc = 0;
  int filled = 0;
  int64_t byte = 0;
  bool zero = false;
  for (int64_t i = 0; i < n; ++i) {
    while (filled < bits) {
      acc |= static_cast<uint64_t>(p[byte++]) << filled;
      filled += 8;
    }
    const uint32_t u = static_cast<uint32_t>(acc) & mask;
    if (midrise) {
      q[i] = static_cast<int8_t>(2 * static_cast<int32_t>(u) - offset);
    } else {
      zero = zero || u == 0;
      q[i] = static_cast<int8_t>(static_cast<int32_t>(u) - offset);
    }
    acc >>= bits;
    filled -= bits;
  }
  if (zero)
    throw std::runtime_error("packed codes: a stored value 0 maps to no " + std::to_string(bits) +
                             "-bit code (corrupt file?)");
  return out;
}

}  // namespace lmquant
