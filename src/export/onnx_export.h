// An LSTM LM as an ONNX graph (opset 17), for ONNX Runtime and the rest of the ONNX world:
//
//   inputs   tokens  int64 [seq, batch]          token ids (lmquant's = pytorch/examples' ids)
//            h0, c0  float [layers, batch, H]    the state carried from the previous chunk
//   graph    Gather(encoder, tokens) → per layer k: LSTM(x, W_k, R_k, B_k, h0[k], c0[k]) →
//            Squeeze → ... → MatMul(top, decoderᵀ) + bias → LogSoftmax(axis -1)
//   outputs  logprobs float [seq, batch, V];  h_n, c_n float [layers, batch, H]
//
// so a chunk-by-chunk evaluation carries the state as lmquant's does (lm/evaluate.h). Layers of
// their own sizes (AWD-LSTM's 400 → 1150 → 1150 → 400) keep LstmState's layout: H is the largest
// layer's, layer k slices its first H_k columns from h0, c0 and pads h_n, c_n back with zeros.
// A projected (LSTMP) model is refused: ONNX's LSTM op has no projection. ONNX's LSTM
// orders the gates i, o, f, c where PyTorch (and lmquant) order them i, f, g, o: W, R and both
// biases are re-ordered, B = [b_ih ; b_hh] (ONNX operator docs, LSTM).
//
// The weights exported are the model's own: a float model's, or a quantized or packed file's
// dequantized (folded) matrices — exactly the model lmquant evaluates as the simulated quantized
// model. A model whose matrices are still OCS-expanded (wider than their inputs: an in-memory
// quantization) has no plain LSTM form and is refused; its saved quantized file loads folded.
//
// The int8 form (`int8` given: a quantized or packed file's matrices) is what ONNX Runtime's own
// dynamic quantization tool writes (onnxruntime/python/tools/quantization/operators/lstm.py):
// each layer a com.microsoft.DynamicQuantizeLSTM with int8 W [1, in, 4H] and R [1, H, 4H] (the
// codes, transposed, gates re-ordered) and per-channel W_scale, R_scale [1, 4H] (lmquant's row
// steps) with zero points 0; the decoder a com.microsoft.DynamicQuantizeMatMul with int8 B [H, V]
// (the codes transposed), b_scale [V] and the bias. The activations are quantized by ONNX
// Runtime at run time (per tensor, uint8 with a zero point), not as the int8 engine does (per
// row, symmetric int8): the two int8 perplexities differ by that rounding. The embedding stays
// the float Gather of its dequantized rows. Every W_ih, W_hh and decoder must be ≤ 8 bits with
// one step per row (row or tensor granularity), without OCS splits or a rotation; otherwise
// std::invalid_argument names the matrix.
#pragma once
#include <string>
#include <vector>

#include "lm/lstm_lm.h"
#include "quant/quantized_matrix.h"

namespace lmquant {

// The serialized ONNX model: float (int8 null or empty) or the int8 form with `int8`'s codes.
// Throws std::invalid_argument for an OCS-expanded model or a matrix the int8 form cannot hold.
std::string onnx_model(const LstmLmImpl& model, const std::vector<QuantizedMatrix>* int8 = nullptr);

// Writes onnx_model(model, int8) to `path` atomically.
void save_onnx(const std::string& path, const LstmLmImpl& model,
               const std::vector<QuantizedMatrix>* int8 = nullptr);

}  // namespace lmquant
