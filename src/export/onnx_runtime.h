// ONNX Runtime as a peer engine: an lmquant ONNX export (export/onnx_export.h) evaluated by
// tools/onnx/ort_eval.js under Node.js with the npm package onnxruntime-node (ONNX Runtime's
// Linux x64 CPU library; tools/setup.sh installs it into <source>/.cache/node), on the same ids
// and protocol as lmquant's evaluate (batchify, bptt chunks, state carried). Used by
// `lmquant bench --what engine`. The script is found in the source tree (or $LMQUANT_ORT_EVAL),
// the package through $LMQUANT_NODE_PATH, else <source>/.cache/node/node_modules.
#pragma once
#include <torch/torch.h>

#include <string>

namespace lmquant {

struct OnnxRuntimeResult {
  bool ran = false;
  std::string why_not;  // when !ran: what is missing or what failed
  double perplexity = 0, loss = 0, seconds = 0, tokens_per_s = 0;
  int64_t tokens = 0;
  std::string version;  // ONNX Runtime's
};

// Evaluates `onnx_path` on `ids` (a 1-D id stream) in ONNX Runtime with `threads` intra-op
// threads (0: its default). Never throws for a missing Node.js or package: says why in why_not.
OnnxRuntimeResult onnx_runtime_eval(const std::string& onnx_path, const torch::Tensor& ids,
                                    int64_t batch, int64_t bptt, int threads);

}  // namespace lmquant
