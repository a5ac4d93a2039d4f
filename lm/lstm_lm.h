// The LSTM language model of pytorch/examples word_language_model, with explicit weights:
//   Embedding(V, E) -> dropout -> L-layer LSTM (E->H, then H->H) -> dropout -> Linear(H, V)
// Per layer k: W_ih (4H x in), W_hh (4H x H), b_ih, b_hh (4H), gate order i, f, g, o:
//   [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh;  c_t = σ(f) c_{t-1} + σ(i) tanh(g);
//   h_t = σ(o) tanh(c_t).
//
// OCS-expanded models: a matrix may be wider than its nominal input, its extra columns fed by
// duplicated activations. `Expansion` holds, per matrix, the index list of the duplicated inputs:
//   input.l{k}:     x' = [x ; x[idx]]      (x = embedding row or layer k-1's h_t)
//   recurrent.l{k}: h' = [h ; h[idx]]      W_hh' h'_{t-1}
//   decoder:        h' = [h ; h[idx]]
// An embedding widened by OCS (E + k columns) simply feeds a W_ih l0 that is E + k wide.
// With no expansion the forward pass uses LibTorch's fused LSTM op (the fast path).
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace lmquant {

struct LstmLmConfig {
  int64_t vocab = 0;
  int64_t emb = 200;
  int64_t hidden = 200;
  int64_t layers = 2;
  double dropout = 0.2;
  bool tied = false;

  void validate() const;  // throws std::invalid_argument naming the bad field
  nlohmann::json to_json() const;
  static LstmLmConfig from_json(const nlohmann::json& j);
  std::string describe() const;  // "2x200 LSTM, emb 200, vocab 33278, untied"
};

struct LstmState {
  torch::Tensor h, c;  // [layers, batch, hidden]
  void detach_() {
    h = h.detach();
    c = c.detach();
  }
};

struct Expansion {
  std::vector<torch::Tensor> input_idx;      // per layer; undefined = none
  std::vector<torch::Tensor> recurrent_idx;  // per layer; undefined = none
  torch::Tensor decoder_idx;                 // undefined = none
  // An OCS-split embedding table (V x (E + k)): its k appended dimensions are added back onto
  // their source dimensions right after the lookup, e = e'[:E] + scatter(e'[E:]) (k additions
  // per token, where duplicating W_ih l0's columns would cost 4H·k multiply-adds).
  torch::Tensor embedding_idx;  // undefined = none
  bool empty() const;
  bool lstm_plain() const;  // no input or recurrent expansion: the fused LSTM op applies
};

class LstmLmImpl : public torch::nn::Module {
 public:
  // `initialize` false leaves the weights uninitialised (torch::empty: their pages are not touched
  // until written), for loaders that overwrite or drop them (quant/quantized_io.h).
  explicit LstmLmImpl(const LstmLmConfig& config, bool initialize = true);

  const LstmLmConfig& config() const { return config_; }
  // Sets the training dropout (a PyTorch file does not record it); throws outside [0, 1).
  void set_dropout(double p);
  torch::Device device() const { return decoder_bias.device(); }
  LstmState init_state(int64_t batch) const;

  // Top-layer outputs [T, B, H] for tokens [T, B]; advances `state`:
  // layers_forward(dropout(embed(tokens))).
  torch::Tensor hidden_states(const torch::Tensor& tokens, LstmState& state);
  // The embedding vectors [T, B, E] of tokens [T, B] (an OCS-split table's columns re-summed).
  torch::Tensor embed(const torch::Tensor& tokens) const;
  // The LSTM stack on inputs x [T, B, E] (between-layer dropout in training); advances `state`.
  // Differentiable in x (the tied objective's embedding gradients, quant/tied_objective.h).
  torch::Tensor layers_forward(torch::Tensor x, LstmState& state);
  // The decoder's input [N, H'] for top-layer outputs [..., H]: flattened, with the decoder
  // expansion's duplicated units appended (H' = H + splits).
  torch::Tensor decoder_input(const torch::Tensor& top) const;
  // Logits [N, V] for top-layer outputs [N, H]: decoder_input · decoder_weightᵀ + bias.
  torch::Tensor logits(const torch::Tensor& top) const;
  // Logits [T * B, V]: hidden_states then (dropout in training) then logits.
  torch::Tensor forward(const torch::Tensor& tokens, LstmState& state);

  // Explicit weights (PyTorch's names in comments). With tied weights decoder_weight IS encoder.
  torch::Tensor encoder;                       // encoder.weight   V x E
  std::vector<torch::Tensor> w_ih, w_hh;       // rnn.weight_ih_l{k}, rnn.weight_hh_l{k}
  std::vector<torch::Tensor> b_ih, b_hh;       // rnn.bias_ih_l{k}, rnn.bias_hh_l{k}
  torch::Tensor decoder_weight, decoder_bias;  // decoder.weight V x H, decoder.bias V
  Expansion expansion;

  // Weights under PyTorch's state_dict names, in PyTorch's order (decoder.weight included even
  // when tied, as PyTorch saves it).
  std::vector<std::pair<std::string, torch::Tensor>> named_weights() const;
  // Copies values (not storage) from `source`, which must have the same shapes.
  void copy_weights_from(const LstmLmImpl& source);
  // The name (PyTorch's) of the first weight holding NaN or Inf, "" when every one is finite:
  // what an error about a non-finite result names.
  std::string first_nonfinite_weight() const;
  // Deep copy on the same device, expansion included.
  std::shared_ptr<LstmLmImpl> clone_model() const;
  // Forces the per-step (explicit) LSTM even without expansion: the reference for tests.
  bool force_explicit = false;

 private:
  torch::Tensor layer_explicit(int64_t k, torch::Tensor x, torch::Tensor& h, torch::Tensor& c);
  LstmLmConfig config_;
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(LstmLm);

// "auto" picks CUDA when available; "cpu"; "cuda" (throws when not available).
torch::Device parse_device(const std::string& name);

}  // namespace lmquant
