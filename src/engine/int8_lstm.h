// The embedding and LSTM layers of a quantized model run from their codes (the decoder is
// int8_decoder.h): the int8 engine's `hidden` half.
//
// Per layer k, with W_ih and W_hh as int8 codes and one step per row (int8_linear.h):
//   input products, all T·B rows of a chunk at once:  p_t = a_x ⊗ s_ih ∘ (q_x · Q_ihᵀ) + b_ih +
//   b_hh per time step:  g_t = p_t + a_h ⊗ s_hh ∘ (q_h · Q_hhᵀ),  [i f g o] = g_t (gate order of
//   PyTorch)
//                   c_t = σ(f) c_{t−1} + σ(i) tanh(g),  r_t = σ(o) tanh(c_t)
//   h_t = r_t, or in a projected (LSTMP) layer h_t = a_r ⊗ s_hr ∘ (q_r · Q_hrᵀ) with r_t quantized
//   per row like the other inputs
// (each layer its own sizes: lm/lstm_lm.h)
// where x (the embedding row or layer k−1's h_t) and h_{t−1} are quantized per row on the fly
// (dynamic quantization), OCS-split inputs duplicated as codes (a row's max is unchanged by
// duplicating its entries, so this equals quantizing the widened row). The gates use
// util/fast_math.h (σ and tanh within ~2e-7 absolute). c and everything between the products stay
// float. The embedding row of a token is gathered from its codes, e_j = Q[tok, j] · s[tok, j / G]
// (any bits, any granularity), OCS halves added back onto their source dimensions; an embedding
// left unquantized is gathered from the float table.
//
// Rotated matrices (quant/rotation.h: codes of W Q) read their input rotated, x Q: W_ih of
// layer k > 0 rotates layer k−1's outputs once per chunk ([T·B, H] x [H, H]), W_hh rotates h_{t−1}
// once per step ([B, H] x [H, H]); a rotated embedding's gathered rows are e Q already, which a
// W_ih of layer 0 rotated by the same Q reads as they are (the rotation folds into the embedding),
// and which are rotated back (e Q Qᵀ) otherwise. The cell and c run in the model's own basis.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/int8_linear.h"
#include "lm/lstm_lm.h"
#include "quant/quantized_io.h"

namespace lmquant {

class Int8Lstm {
 public:
  // Throws std::invalid_argument naming the matrix when a W_ih, W_hh or W_hr is not quantized,
  // has group scales or more than 8 bits.
  explicit Int8Lstm(const QuantizedFile& f);

  // Top-layer outputs [T, B, D] for tokens [T, B] (int64, CPU); advances `state`
  // (LstmState's layout, float), exactly as LstmLmImpl::hidden_states does in eval mode.
  torch::Tensor hidden_states(const torch::Tensor& tokens, LstmState& state) const;

  size_t bytes() const;  // weight memory held: codes, steps, biases, embedding
  bool embedding_from_codes() const { return emb_codes_.defined(); }

 private:
  struct Layer {
    Int8Linear ih, hh;
    std::vector<int64_t> ih_source, hh_source;  // OCS: appended column t reads input[source[t]]
    torch::Tensor bias;                         // b_ih + b_hh, float [4H]
    int64_t in = 0;                             // nominal input width (E or the layer below's)
    int64_t hidden = 0, out = 0;                // H_k and out_k (P_k when projected)
    torch::Tensor ih_rot, hh_rot;  // Q of a rotated W_ih / W_hh (float [in, in]), else undefined
    uint64_t ih_seed = 0;
    bool projected = false;
    Int8Linear hr;  // W_hr [P, H] when projected
    std::vector<int64_t> hr_source;
    torch::Tensor hr_rot;
  };
  void embed(const int64_t* tokens, int64_t n, float* x) const;
  std::vector<Layer> layers_;
  int64_t emb_ = 0;
  LstmLmConfig config_;
  torch::Tensor emb_codes_;  // int8 or int16 [V, E + k]; undefined: emb_float_
  torch::Tensor emb_step_;   // float [V, groups]
  int64_t emb_group_ = 0;
  std::vector<int64_t> emb_source_;
  torch::Tensor emb_rot_;  // Q of a rotated embedding: gathered rows are e Q
  uint64_t emb_seed_ = 0;
  torch::Tensor emb_float_;  // float [V, E]
};

}  // namespace lmquant
