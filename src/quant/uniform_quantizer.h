// Uniform symmetric signed quantizer.
//
//   qmax = 2^(b-1) - 1,  s = α / qmax,  q = clamp(round(w / s), -qmax, qmax),  ŵ = q · s
//
// Rounding: round half to even (IEEE nearbyint in the default mode, as torch::round). α = 0 (an
// all-zero group) gives s = 0 and q = 0. Example, b = 3, α = 1.5: qmax = 3, s = 0.5;
// w = [0.2, -0.8, 0.75, 1.9] -> w/s = [0.4, -1.6, 1.5, 3.8] -> q = [0, -2, 2, 3] -> ŵ = [0, -1, 1, 1.5]
// (1.5 rounds to the even 2; 3.8 rounds to 4 and is clamped to 3: 1.9 is clipped).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace lmquant {

class UniformQuantizer {
 public:
  // bits in 2..16; throws std::invalid_argument naming the value otherwise.
  explicit UniformQuantizer(int bits);

  int bits() const { return bits_; }
  int32_t qmax() const { return qmax_; }
  float step(float alpha) const { return alpha / static_cast<float>(qmax_); }

  // Fast path: codes for w with a step per row ([rows] or [rows, 1]) or one step (0-dim).
  // int16 codes, same shape as w.
  torch::Tensor codes(const torch::Tensor& w, const torch::Tensor& step) const;
  // ŵ = codes · step.
  torch::Tensor dequantize(const torch::Tensor& codes, const torch::Tensor& step) const;

 private:
  int bits_;
  int32_t qmax_;
};

// The plain reference: one value at a time, for tests.
int32_t reference_code(float w, float step, int32_t qmax);
std::vector<float> reference_fake_quantize(const std::vector<float>& w, float alpha, int bits);

}  // namespace lmquant
