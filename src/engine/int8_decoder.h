// The decoder and softmax of a quantized model in int8: logits z = (q_h · Q_Wᵀ) ∘ (a ⊗ s) + b
// with int32 accumulation, never expanding the weights to float.
//
//   weights: the decoder's codes Q_W (int8, V x H', H' = H + OCS splits), a step s_v per row;
//   activations: each row h_r of the decoder input quantized on the fly, a_r = max_j |h_rj| / 127;
//   z_rv = a_r · s_v · Σ_j q_h[r, j] · Q_W[v, j] + b_v   (int8_linear.h: formula, bound, example).
// The products run in oneDNN's int8 matmul (s8 x s8 -> s32, VNNI where the CPU has it), one
// vocabulary block at a time, feeding lm/nll.h's blocked log-sum-exp: no [N, V] logits either.
// A rotated decoder (quant/rotation.h: codes of W Q) quantizes h Q instead of h ([N, H] x [H, H]
// per chunk, before the activations are quantized).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "engine/int8_linear.h"
#include "lm/evaluate.h"
#include "quant/quantized_io.h"

namespace lmquant {

class Int8Decoder {
 public:
  // From the decoder's QuantizedMatrix (quantize_model or read_quantized) and its float bias.
  // Throws std::invalid_argument for group scales (one step per row is needed) or codes that
  // do not fit int8.
  Int8Decoder(const QuantizedMatrix& decoder, const torch::Tensor& bias);
  ~Int8Decoder();
  Int8Decoder(Int8Decoder&&) noexcept;
  Int8Decoder& operator=(Int8Decoder&&) noexcept;

  // Σ_r NLL_r for the decoder input h [N, H'] (LstmLmImpl::decoder_input) and targets [N].
  // With `rows` (N doubles), each row's NLL_r too.
  double nll(const torch::Tensor& h, const torch::Tensor& targets, int64_t block = 1024,
             double* rows = nullptr) const;
  // NLL_r per row, [N] float64.
  torch::Tensor row_nll(const torch::Tensor& h, const torch::Tensor& targets) const;
  // The logits of h [N, H'] as a block producer (lm/nll.h BlockLogits; the activations are
  // quantized once, here): for the divergence from a reference model (lm/divergence.h).
  BlockLogits block_logits(const torch::Tensor& h) const;
  // The logits [N, V] (tests and small inputs).
  torch::Tensor logits(const torch::Tensor& h) const;

  int64_t vocab() const { return weights_.rows(); }
  int64_t width() const { return weights_.cols(); }
  size_t bytes() const {
    return weights_.bytes() + (bias_.numel() + (rot_.defined() ? rot_.numel() : 0)) * sizeof(float);
  }

 private:
  // What the codes read: h, or h Q for a rotated decoder.
  torch::Tensor input(const torch::Tensor& h) const {
    return rot_.defined() ? h.to(torch::kFloat).mm(rot_) : h;
  }
  Int8Linear weights_;
  torch::Tensor bias_;  // float [V]
  torch::Tensor rot_;   // Q of a rotated decoder (float [H, H]), else undefined
};

// The decoder hooks for evaluate and the sentence scorer (lm/evaluate.h EngineHooks::decoder and
// decoder_rows; `hidden` left empty) running the decoder of a quantized or packed file in int8
// (the tied embedding/decoder matrix where the model is tied). With OCS on the decoder,
// `f.loaded.model`'s decoder input gains the duplicated units. Throws std::invalid_argument when
// the file's decoder is not quantized or the engine refuses it.
EngineHooks int8_decoder_hooks(QuantizedFile& f);

}  // namespace lmquant
