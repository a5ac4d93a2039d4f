// The LSTM language model of pytorch/examples word_language_model, with explicit weights, and
// any stack of LSTM layers of the same kind (AWD-LSTM, fastai, LSTMP):
//   Embedding(V, E) -> dropout -> L LSTM layers -> dropout -> Linear(D, V)
// Layer k has its own cell size H_k, an optional projection of size P_k (PyTorch's
// nn.LSTM(proj_size=P): LSTMP, Sak et al. 2014), and reads the previous layer's output:
//   in_0 = E,  in_k = out_{k-1},  out_k = P_k if projected else H_k,  D = out_{L-1}.
// Per layer k: W_ih (4H_k x in_k), W_hh (4H_k x out_k), b_ih, b_hh (4H_k), W_hr (P_k x H_k) when
// projected; gate order i, f, g, o:
//   [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh;  c_t = σ(f) c_{t-1} + σ(i) tanh(g);
//   r_t = σ(o) tanh(c_t);  h_t = W_hr r_t when projected, else h_t = r_t.
// A tied model's decoder IS its embedding, so D = E (AWD-LSTM: 400 -> 1150 -> 1150 -> 400).
//
// Example: AWD-LSTM on WikiText-2 has E = 400, H = (1150, 1150, 400), no projection: W_ih l0 is
// 4600 x 400, W_hh l1 4600 x 1150, W_ih l2 1600 x 1150, W_hh l2 1600 x 400, the decoder 33278 x
// 400.
//
// OCS-expanded models: a matrix may be wider than its nominal input, its extra columns fed by
// duplicated activations. `Expansion` holds, per matrix, the index list of the duplicated inputs:
//   input.l{k}:     x' = [x ; x[idx]]      (x = embedding row or layer k-1's h_t)
//   recurrent.l{k}: h' = [h ; h[idx]]      W_hh' h'_{t-1}
//   decoder:        h' = [h ; h[idx]]
// An embedding widened by OCS (E + k columns) simply feeds a W_ih l0 that is E + k wide.
//   projection.l{k}: r' = [r ; r[idx]]      W_hr' r'_t
// With no expansion the forward pass uses LibTorch's fused LSTM op (the fast path; one call for
// the whole stack when every layer has the same size and no projection, one call per layer
// otherwise).
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
  // Every layer's cell size; with `layer_hidden`, the largest of them.
  int64_t hidden = 200;
  int64_t layers = 2;
  double dropout = 0.2;
  bool tied = false;
  // Per-layer sizes, each empty for the uniform model (and then absent from the JSON, so that the
  // files of uniform models are what they always were): the cell size H_k of each layer, and the
  // projection size P_k of each layer (0: none; else 0 < P_k < H_k, as nn.LSTM requires).
  std::vector<int64_t> layer_hidden;
  std::vector<int64_t> layer_proj;

  int64_t cell(int64_t k) const;    // H_k
  int64_t proj(int64_t k) const;    // P_k, 0 for none
  int64_t output(int64_t k) const;  // out_k: P_k or H_k
  int64_t input(int64_t k) const;   // in_k: E for k = 0, else out_{k-1}
  int64_t top() const;              // D = out_{L-1}: the decoder's input width
  // Every layer the same size, without projection: pytorch/examples' model.
  bool uniform() const { return layer_hidden.empty() && layer_proj.empty(); }
  bool projected() const;  // some layer has a projection
  // The widths of the state tensors (LstmState): the largest out_k and the largest H_k.
  int64_t state_h_width() const;
  int64_t state_c_width() const;

  void validate() const;  // throws std::invalid_argument naming the bad field
  nlohmann::json to_json() const;
  static LstmLmConfig from_json(const nlohmann::json& j);
  // "2x200 LSTM, emb 200, vocab 33278, untied";
  // "3-layer LSTM 1150,1150,400, emb 400, vocab 33278, tied"; "2x512 LSTMP (proj 128), ...".
  std::string describe() const;
};

// The recurrent state of every layer, as one tensor each (cheap to carry, cut by batch, save):
// h [layers, batch, state_h_width], c [layers, batch, state_c_width]. Layer k's h_t is
// h[k, :, :out_k] and its c_t c[k, :, :H_k]; columns beyond them stay zero. For a uniform model
// both are [layers, batch, hidden], PyTorch's own layout.
struct LstmState {
  torch::Tensor h, c;
  void detach_() {
    h = h.detach();
    c = c.detach();
  }
};

struct Expansion {
  std::vector<torch::Tensor> input_idx;       // per layer; undefined = none
  std::vector<torch::Tensor> recurrent_idx;   // per layer; undefined = none
  std::vector<torch::Tensor> projection_idx;  // per layer; undefined = none
  torch::Tensor decoder_idx;                  // undefined = none
  // An OCS-split embedding table (V x (E + k)): its k appended dimensions are added back onto
  // their source dimensions right after the lookup, e = e'[:E] + scatter(e'[E:]) (k additions
  // per token, where duplicating W_ih l0's columns would cost 4H·k multiply-adds).
  torch::Tensor embedding_idx;  // undefined = none
  bool empty() const;
  bool lstm_plain() const;  // no input, recurrent or projection expansion: the fused op applies
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

  // Top-layer outputs [T, B, D] for tokens [T, B]; advances `state`:
  // layers_forward(dropout(embed(tokens))).
  torch::Tensor hidden_states(const torch::Tensor& tokens, LstmState& state);
  // The embedding vectors [T, B, E] of tokens [T, B] (an OCS-split table's columns re-summed).
  torch::Tensor embed(const torch::Tensor& tokens) const;
  // The LSTM stack on inputs x [T, B, E] (between-layer dropout in training); advances `state`.
  // Differentiable in x (the tied objective's embedding gradients, quant/tied_objective.h).
  torch::Tensor layers_forward(torch::Tensor x, LstmState& state);
  // The decoder's input [N, D'] for top-layer outputs [..., D]: flattened, with the decoder
  // expansion's duplicated units appended (D' = D + splits).
  torch::Tensor decoder_input(const torch::Tensor& top) const;
  // Logits [N, V] for top-layer outputs [N, D]: decoder_input · decoder_weightᵀ + bias.
  torch::Tensor logits(const torch::Tensor& top) const;
  // Logits [T * B, V]: hidden_states then (dropout in training) then logits.
  torch::Tensor forward(const torch::Tensor& tokens, LstmState& state);

  // Explicit weights (PyTorch's names in comments). With tied weights decoder_weight IS encoder.
  torch::Tensor encoder;                  // encoder.weight   V x E
  std::vector<torch::Tensor> w_ih, w_hh;  // rnn.weight_ih_l{k}, rnn.weight_hh_l{k}
  std::vector<torch::Tensor> b_ih, b_hh;  // rnn.bias_ih_l{k}, rnn.bias_hh_l{k}
  std::vector<torch::Tensor> w_hr;  // rnn.weight_hr_l{k} P_k x H_k; undefined when not projected
  torch::Tensor decoder_weight, decoder_bias;  // decoder.weight V x D, decoder.bias V
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

  // What one layer's steps fed to its matrices (lm/matrices.h collect_matrix_inputs): per step
  // t, h_{t-1} (W_hh's input, before any OCS duplicates) and, when projected, r_t (W_hr's).
  struct LayerTrace {
    std::vector<torch::Tensor> h_in, r;
  };
  // Layer k step by step (the reference path, OCS expansions applied) on inputs x [T, B, in_k]
  // from and to h [B, out_k], c [B, H_k]; returns the outputs [T, B, out_k]. With `trace`, each
  // step's matrix inputs are appended to it.
  torch::Tensor layer_explicit(int64_t k, torch::Tensor x, torch::Tensor& h, torch::Tensor& c,
                               LayerTrace* trace = nullptr);

 private:
  // Layer k's fused op (LibTorch's lstm, with its projection) from and to h [B, out_k], c [B, H_k].
  torch::Tensor layer_fused(int64_t k, const torch::Tensor& x, torch::Tensor& h, torch::Tensor& c);
  LstmLmConfig config_;
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(LstmLm);

// Per-layer sizes from a comma list ("1150,1150,400"); one number stands for every one of the
// `layers` layers. Throws std::invalid_argument quoting the list.
std::vector<int64_t> parse_layer_sizes(const std::string& list, int64_t layers);

// Layer k's h [B, out_k] and c [B, H_k] in `state` (views), and the state rebuilt from per-layer
// tensors (padded with zeros to the state widths).
torch::Tensor layer_h(const LstmLmConfig& c, const LstmState& s, int64_t k);
torch::Tensor layer_c(const LstmLmConfig& c, const LstmState& s, int64_t k);
LstmState stack_state(const LstmLmConfig& c, const std::vector<torch::Tensor>& h,
                      const std::vector<torch::Tensor>& c_);

// "auto" picks CUDA when available; "cpu"; "cuda" (throws when not available).
torch::Device parse_device(const std::string& name);

}  // namespace lmquant
