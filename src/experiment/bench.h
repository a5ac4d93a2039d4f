// Benchmarks, each measured against a baseline run beside it in the same process and reported
// as ratios (never as pass/fail thresholds). `lmquant bench` prints them.
//   tokenize  all three splits: seconds, resident memory
//   eval      plain LibTorch loop (fused LSTM op + torch::cross_entropy per chunk) vs lmquant's
//             evaluate (fused LSTM op + vectorised log-sum-exp), tokens/s, and the fraction of
//             the machine's measured matrix-product ceiling; then the decoder + softmax of one
//             chunk alone: LibTorch, addmm + one-pass NLL, vocabulary-blocked (lm/nll.h), and
//             the int8 engine's decoder (engine/int8_decoder.h) at 8 bits
//   ceilings  the machine's fp32 and int8 matrix-product rates on the engine's shapes (BLAS,
//             oneDNN s8s8 and u8s8, each lmquant int8 kernel the CPU runs; bench_ceilings.h)
//   engine    the int8 engine (engine/int8_engine.h; every matrix at engine_bits per row) vs the
//             LibTorch float loop, lmquant's float evaluate of the same (simulated) weights,
//             the int8 decoder alone, and LibTorch's dynamic int8 (quantized::linear_dynamic,
//             ONEDNN), and ONNX Runtime, float and dynamic int8 (the same codes as
//             DynamicQuantizeLSTM/DynamicQuantizeMatMul), on the model exported as ONNX
//             (export/onnx_runtime.h; skipped with the reason without Node.js/onnxruntime-node):
//             tokens/s, perplexity, weight memory held
//   train     LibTorch's cross-entropy vs lmquant's fused softmax-cross-entropy, tokens/s
//   quant     time to choose α for every matrix (each clip rule, tensor and row granularity) and
//             to OCS-split every matrix at r = 0.05, against one float evaluation of the same
//             tokens; and the expanded OCS model's evaluation speed vs the folded one's, beside
//             the expanded model's multiply-add overhead
//   gptq      error-compensating rounding of every matrix (3 bits, mse, per row) with its
//             calibration forward passes, against round-to-nearest with the same α
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "corpus/corpus.h"
#include "lm/lstm_lm.h"

namespace lmquant {

struct BenchOptions {
  std::string what = "tokenize,eval,ceilings,engine,train,quant,gptq";  // comma list
  int64_t eval_tokens = 35000;  // test-split tokens evaluated per path
  int64_t train_batches = 20;
  int engine_bits = 4;  // engine: bits of every matrix                       // training batches
                        // per path (20 x 35)
  bool has(const std::string& part) const;
  // Throws std::invalid_argument naming an unknown part of `what` and listing the valid ones.
  void validate() const;
};

struct BenchResult {
  nlohmann::json json;  // every measurement
  std::string text;     // the same as readable lines
};

// `load` tokenizes the corpus (timed: the tokenize line); `make_model` gives the model to
// measure on the corpus's vocabulary.
BenchResult run_bench(const BenchOptions& o, const std::function<Corpus()>& load,
                      const std::function<LstmLm(const Corpus&)>& make_model);

}  // namespace lmquant
