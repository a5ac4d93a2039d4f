// Batching as pytorch/examples word_language_model: batchify cuts the id stream into `batch`
// columns (dropping the remainder), get_batch takes bptt rows with targets shifted by one.
//   stream 0..9, batch 2 -> [[0,5],[1,6],[2,7],[3,8],[4,9]] (5 x 2)
//   get_batch(i=0, bptt=2): data [[0,5],[1,6]], targets [1,6,2,7] (flattened)
#pragma once
#include <torch/torch.h>

namespace lmquant {

// [n / batch, batch] int64, contiguous. Throws when the stream has fewer than batch * 2 ids.
torch::Tensor batchify(const torch::Tensor& stream, int64_t batch);

struct Chunk {
  torch::Tensor data;     // [len, batch]
  torch::Tensor targets;  // [len * batch]
};

// Rows i .. i+len-1 with len = min(bptt, rows - 1 - i).
Chunk get_batch(const torch::Tensor& batched, int64_t i, int64_t bptt);

}  // namespace lmquant
