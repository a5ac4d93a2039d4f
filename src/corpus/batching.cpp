#include "corpus/batching.h"

#include <stdexcept>

namespace lmquant {

torch::Tensor batchify(const torch::Tensor& stream, int64_t batch) {
  if (batch <= 0) throw std::invalid_argument("batch size must be positive");
  const int64_t rows = stream.numel() / batch;
  if (rows < 2)
    throw std::invalid_argument("a split of " + std::to_string(stream.numel()) +
                                " tokens is too short for batch size " + std::to_string(batch));
  return stream.narrow(0, 0, rows * batch).view({batch, rows}).t().contiguous();
}

Chunk get_batch(const torch::Tensor& batched, int64_t i, int64_t bptt) {
  const int64_t len = std::min(bptt, batched.size(0) - 1 - i);
  return {batched.narrow(0, i, len), batched.narrow(0, i + 1, len).reshape({-1})};
}

}  // namespace lmquant
