// Uniform symmetric signed quantizer, on one of two grids of b bits:
//
//   midtread (the default; a zero level, 2^b − 1 levels):
//     qmax = 2^(b-1) - 1,  s = α / qmax,  q = clamp(round(w / s), -qmax, qmax),  ŵ = q · s
//   midrise (no zero level, all 2^b levels: ±s, ±3s, ..., ±qmax·s):
//     qmax = 2^b - 1,      s = α / qmax,  q = clamp(nearest odd integer to w / s, ±qmax),
//     ŵ = q · s   (codes are odd; s is half the distance between levels)
//
// The midtread grid wastes one of the 2^b codes (a 2-bit midtread quantizer is ternary: −s, 0,
// s); midrise uses all of them, at the price of no exact zero. For a Gaussian, the best 4-level
// uniform quantizer has MSE 0.1175 σ², the best 3-level one 0.1902 σ² (Max, "Quantizing for
// minimum distortion", IRE Trans. Inf. Theory 1960, Table I); at 3 bits 8 vs 7 levels. Both
// grids dequantize the same way (ŵ = code · step), so files, folding and the int8 engine read
// either; the codes of a midrise b-bit grid need b + 1 bits as integers (|q| <= 2^b − 1, so
// b <= 7 keeps them in int8) and are packed at b bits (quant/bit_packing.h). Midrise has a
// 1-bit grid too: ±s, a sign per weight and a scale per row (binary weights).
//
// Rounding: round half to even (IEEE nearbyint in the default mode, as torch::round). α = 0 (an
// all-zero group) gives s = 0 and q = 0. Example, b = 3, α = 1.5: qmax = 3, s = 0.5;
// w = [0.2, -0.8, 0.75, 1.9] -> w/s = [0.4, -1.6, 1.5, 3.8] -> q = [0, -2, 2, 3] -> ŵ = [0, -1,
// 1, 1.5] (1.5 rounds to the even 2; 3.8 rounds to 4 and is clamped to 3: 1.9 is clipped). Midrise,
// b = 2, α = 1.5: qmax = 3, s = 0.5, levels ±0.5, ±1.5; w = [0.2, -0.8, 1.2, 3.0] -> w/s = [0.4,
// -1.6, 2.4, 6.0] -> nearest odd [1, -1, 3, 5 (a tie of 5 and 7: 2·round(2.5) + 1, half to even)]
// clamped -> q = [1, -1, 3, 3] -> ŵ = [0.5, -0.5, 1.5, 1.5].
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lmquant {

enum class Grid { kMidtread, kMidrise };
std::string to_string(Grid g);
Grid parse_grid(const std::string& s);  // "midtread" or "midrise"

class UniformQuantizer {
 public:
  // bits in 2..16 (midrise: 1..7); throws std::invalid_argument naming the value otherwise.
  explicit UniformQuantizer(int bits, Grid grid = Grid::kMidtread);

  int bits() const { return bits_; }
  Grid grid() const { return grid_; }
  int32_t qmax() const { return qmax_; }
  float step(float alpha) const { return alpha / static_cast<float>(qmax_); }

  // Fast path: codes for w with a step per row ([rows] or [rows, 1]) or one step (0-dim).
  // int16 codes, same shape as w.
  torch::Tensor codes(const torch::Tensor& w, const torch::Tensor& step) const;
  // ŵ = codes · step.
  torch::Tensor dequantize(const torch::Tensor& codes, const torch::Tensor& step) const;

 private:
  int bits_;
  Grid grid_;
  int32_t qmax_;
};

// The plain reference: one value at a time, for tests (and the clip rules' exact objective).
int32_t reference_code(float w, float step, int32_t qmax, Grid grid = Grid::kMidtread);
std::vector<float> reference_fake_quantize(const std::vector<float>& w, float alpha, int bits,
                                           Grid grid = Grid::kMidtread);

}  // namespace lmquant
