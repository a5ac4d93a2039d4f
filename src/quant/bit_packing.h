// Codes of b bits (2..8; midrise 1..7) packed into bytes, as packed model files store them.
//
// A symmetric b-bit code q ∈ [−(2^(b−1) − 1), 2^(b−1) − 1] is stored as the unsigned
// u = q + 2^(b−1) ∈ [1, 2^b − 1], and code i occupies bits [i·b, (i + 1)·b) of a little-endian
// bit stream (LSB first): ⌈n·b / 8⌉ bytes for n codes, the last byte's unused high bits zero.
// Example, b = 3 (q ∈ [−3, 3], u = q + 4), codes [−3, 0, 3]: u = [1, 4, 7] = 001, 100, 111 (LSB
// first) → bits 1,0,0 | 0,0,1 | 1,1,1 → byte 0 = 0b11100001 = 0xE1, byte 1 = 0x01 (bit 8).
// At b = 4 this is two codes per byte, the first in the low nibble; at b = 8 one per byte.
// A midrise code (quant/uniform_quantizer.h: odd, q ∈ [−(2^b − 1), 2^b − 1]) is stored as
// u = (q + 2^b − 1) / 2 ∈ [0, 2^b − 1]: every stored value is a code. Example, b = 2: q = −3, −1,
// 1, 3 → u = 0, 1, 2, 3.
#pragma once
#include <torch/torch.h>

#include <cstdint>

#include "quant/uniform_quantizer.h"

namespace lmquant {

// Bytes that n codes of b bits take.
int64_t packed_bytes(int64_t n, int bits);

// codes: any integer tensor whose values lie in [−(2^(b−1) − 1), 2^(b−1) − 1] (flattened in
// row-major order) → uint8 [packed_bytes(n, b)]. Throws std::invalid_argument for bits outside
// 2..8 or a code outside the range (naming it).
// Midrise: odd codes in [−(2^b − 1), 2^b − 1] (b <= 7).
torch::Tensor pack_codes(const torch::Tensor& codes, int bits, Grid grid = Grid::kMidtread);

// The inverse: the first n codes of `packed` as int8 [n]. Throws std::runtime_error when
// `packed` holds fewer than packed_bytes(n, bits) bytes or a stored u is 0 (no code maps there:
// a corrupt file).
torch::Tensor unpack_codes(const torch::Tensor& packed, int64_t n, int bits,
                           Grid grid = Grid::kMidtread);

}  // namespace lmquant
