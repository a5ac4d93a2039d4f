#include "quant/uniform_quantizer.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace lmquant {

std::string to_string(Grid g) { return g == Grid::kMidrise ? "midrise" : "midtread"; }

Grid parse_grid(const std::string& s) {
  if (s == "midtread") return Grid::kMidtread;
  if (s == "midrise") return Grid::kMidrise;
  throw std::invalid_argument("unknown grid '" + s + "'; valid values: midtread, midrise");
}

UniformQuantizer::UniformQuantizer(int bits, Grid grid) : bits_(bits), grid_(grid) {
  if (grid == Grid::kMidrise) {
    if (bits < 1 || bits > 7)
      throw std::invalid_argument(
          "the midrise grid takes 1..7 bits (its codes, up to 2^b − 1, "
          "must fit int8), got " +
          std::to_string(bits));
  } else if (bits < 2 || bits > 16) {
    throw std::invalid_argument("bits must be in 2..16, got " + std::to_string(bits));
  }
  qmax_ = grid == Grid::kMidrise ? (1 << bits) - 1 : (1 << (bits - 1)) - 1;
}

torch::Tensor UniformQuantizer::codes(const torch::Tensor& w, const torch::Tensor& step) const {
  auto s = step.dim() == 1 ? step.unsqueeze(1) : step;
  // s = 0 only for all-zero groups: divide by 1 there (w is 0 anyway).
  auto safe = torch::where(s > 0, s, torch::ones_like(s));
  if (grid_ == Grid::kMidrise) {
    // The nearest odd integer, 2·round((x − 1) / 2) + 1; a zero group (s = 0) gets code 1 (a
    // valid midrise code: ŵ = 1 · 0 = 0).
    auto q = (torch::round((w / safe - 1) / 2) * 2 + 1).clamp_(-qmax_, qmax_);
    return torch::where(s > 0, q, torch::ones_like(q)).to(torch::kShort);
  }
  return torch::round(w / safe).clamp_(-qmax_, qmax_).to(torch::kShort);
}

torch::Tensor UniformQuantizer::dequantize(const torch::Tensor& codes,
                                           const torch::Tensor& step) const {
  auto s = step.dim() == 1 ? step.unsqueeze(1) : step;
  return codes.to(torch::kFloat) * s;
}

int32_t reference_code(float w, float step, int32_t qmax, Grid grid) {
  if (step == 0.0f) return grid == Grid::kMidrise ? 1 : 0;
  const float q = grid == Grid::kMidrise ? 2 * std::nearbyint((w / step - 1) / 2) + 1
                                         : std::nearbyint(w / step);
  return static_cast<int32_t>(
      std::max(-static_cast<float>(qmax), std::min(static_cast<float>(qmax), q)));
}

std::vector<float> reference_fake_quantize(const std::vector<float>& w, float alpha, int bits,
                                           Grid grid) {
  const UniformQuantizer q(bits, grid);
  const float s = q.step(alpha);
  std::vector<float> out;
  out.reserve(w.size());
  for (float v : w) out.push_back(static_cast<float>(reference_code(v, s, q.qmax(), grid)) * s);
  return out;
}

}  // namespace lmquant
