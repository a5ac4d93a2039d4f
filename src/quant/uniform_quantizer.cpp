#include "quant/uniform_quantizer.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace lmquant {

UniformQuantizer::UniformQuantizer(int bits) : bits_(bits) {
  if (bits < 2 || bits > 16)
    throw std::invalid_argument("bits must be in 2..16, got " + std::to_string(bits));
  qmax_ = (1 << (bits - 1)) - 1;
}

torch::Tensor UniformQuantizer::codes(const torch::Tensor& w, const torch::Tensor& step) const {
  auto s = step.dim() == 1 ? step.unsqueeze(1) : step;
  // s = 0 only for all-zero groups: divide by 1 there (w is 0 anyway).
  auto safe = torch::where(s > 0, s, torch::ones_like(s));
  return torch::round(w / safe).clamp_(-qmax_, qmax_).to(torch::kShort);
}

torch::Tensor UniformQuantizer::dequantize(const torch::Tensor& codes,
                                           const torch::Tensor& step) const {
  auto s = step.dim() == 1 ? step.unsqueeze(1) : step;
  return codes.to(torch::kFloat) * s;
}

int32_t reference_code(float w, float step, int32_t qmax) {
  if (step == 0.0f) return 0;
  const float q = std::nearbyint(w / step);
  return static_cast<int32_t>(std::max(-static_cast<float>(qmax), std::min(static_cast<float>(qmax), q)));
}

std::vector<float> reference_fake_quantize(const std::vector<float>& w, float alpha, int bits) {
  const UniformQuantizer q(bits);
  const float s = q.step(alpha);
  std::vector<float> out;
  out.reserve(w.size());
  for (float v : w) out.push_back(static_cast<float>(reference_code(v, s, q.qmax())) * s);
  return out;
}

}  // namespace lmquant
