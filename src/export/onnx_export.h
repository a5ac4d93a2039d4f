// An LSTM LM as an ONNX graph (opset 17), for ONNX Runtime and the rest of the ONNX world:
//
//   inputs   tokens  int64 [seq, batch]          token ids (lmquant's = pytorch/examples' ids)
//            h0, c0  float [layers, batch, H]    the state carried from the previous chunk
//   graph    Gather(encoder, tokens) → per layer k: LSTM(x, W_k, R_k, B_k, h0[k], c0[k]) →
//            Squeeze → ... → MatMul(top, decoderᵀ) + bias → LogSoftmax(axis -1)
//   outputs  logprobs float [seq, batch, V];  h_n, c_n float [layers, batch, H]
//
// so a chunk-by-chunk evaluation carries the state as lmquant's does (lm/evaluate.h). ONNX's LSTM
// orders the gates i, o, f, c where PyTorch (and lmquant) order them i, f, g, o: W, R and both
// biases are re-ordered, B = [b_ih ; b_hh] (ONNX operator docs, LSTM).
//
// The weights exported are the model's own: a float model's, or a quantized or packed file's
// dequantized (folded) matrices — exactly the model lmquant evaluates as the simulated quantized
// model. A model whose matrices are still OCS-expanded (wider than their inputs: an in-memory
// quantization) has no plain LSTM form and is refused; its saved quantized file loads folded.
#pragma once
#include <string>

#include "lm/lstm_lm.h"

namespace lmquant {

// The serialized ONNX model. Throws std::invalid_argument for an OCS-expanded model.
std::string onnx_model(const LstmLmImpl& model);

// Writes onnx_model(model) to `path` atomically.
void save_onnx(const std::string& path, const LstmLmImpl& model);

}  // namespace lmquant
