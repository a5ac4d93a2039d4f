#include "quant/quantized_matrix.h"

namespace lmquant {

torch::Tensor steps_per_weight(const torch::Tensor& step, int64_t group_size, int64_t rows,
                               int64_t width) {
  auto s = step.dim() == 1 ? step.unsqueeze(1) : step;
  if (s.size(1) == 1) return s.expand({rows, width});
  return s.repeat_interleave(group_size, 1).narrow(1, 0, width);
}

torch::Tensor to_input_basis(const torch::Tensor& deq, const OcsPlan& plan,
                             const torch::Tensor& rot) {
  if (rot.defined()) return deq.mm(rot.t());
  return plan.splits() > 0 ? fold_ocs(deq, plan) : deq;
}

torch::Tensor QuantizedMatrix::step_per_weight() const {
  return steps_per_weight(step, group_size, codes.size(0), codes.size(1));
}

torch::Tensor QuantizedMatrix::dequantized() const {
  return to_input_basis(codes.to(torch::kFloat) * step_per_weight(), plan, rotation);
}

}  // namespace lmquant
