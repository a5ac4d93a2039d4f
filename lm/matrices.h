// The model's quantizable matrices by name: the one table that knows, for every matrix, its name,
// its PyTorch state_dict key, which tensor of the model it is, whether its rows are the LSTM's
// gate blocks, its OCS expansion slot, what one of its input columns costs per token, and the
// tied rule (a tied model's embedding and decoder are one matrix, "embedding+decoder", stored
// once under encoder.weight). Everything that maps names to tensors goes through here.
//
//   name               PyTorch key            shape          gated  MACs per input column per token
//   embedding          encoder.weight         V x E          no     0 (a lookup)
//   decoder            decoder.weight         V x D          no     V
//   embedding+decoder  encoder.weight (tied)  V x D          no     V (the decoder's product)
//   input.l{k}         rnn.weight_ih_l{k}     4H_k x in_k    yes    4H_k
//   recurrent.l{k}     rnn.weight_hh_l{k}     4H_k x out_k   yes    4H_k
//   projection.l{k}    rnn.weight_hr_l{k}     P_k x H_k      no     P_k   (projected layers only)
// (sizes: lm/lstm_lm.h). The `recurrent` target covers a layer's projection too: both carry h_t
// back into the cell (quantizing W_hh without W_hr would leave the recurrent path half float).
//
// Order: embedding (or embedding+decoder), decoder (untied), then input.l{k}, recurrent.l{k},
// projection.l{k} for each layer k.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "lm/lstm_lm.h"

namespace lmquant {

// The kinds of matrix; a quantization target selects kinds (all layers of a kind follow).
enum class MatrixKind { kEmbedding, kInput, kRecurrent, kDecoder, kProjection };

struct NamedMatrix {
  std::string name;         // "embedding", "embedding+decoder", "decoder", "input.l0", ...
  std::string pytorch_key;  // "encoder.weight", "decoder.weight", "rnn.weight_ih_l0", ...
  MatrixKind kind = MatrixKind::kEmbedding;  // kEmbedding for the tied matrix
  int64_t layer = -1;                        // -1 for embedding and decoder
  bool gated = false;           // rows are the i, f, g, o blocks of H rows each (W_ih, W_hh)
  bool tied = false;            // the tied embedding/decoder matrix
  int64_t macs_per_column = 0;  // multiply-adds per token that one input column costs

  // Whether quantizing `k` covers this matrix (the tied matrix is both embedding and decoder; a
  // projection is covered by kRecurrent as well as by its own kind).
  bool covers(MatrixKind k) const;
  // Every state_dict key whose tensor IS this matrix: its own, and for the tied matrix also
  // decoder.weight (PyTorch saves the shared tensor under both names).
  std::vector<std::string> state_dict_keys() const;
  // The matrix's tensor in `model` (the model's own handle: set_data on it replaces the
  // parameter) and its OCS index-list slot in model.expansion (created when missing).
  torch::Tensor& weight(LstmLmImpl& model) const;
  const torch::Tensor& weight(const LstmLmImpl& model) const;
  torch::Tensor& expansion_slot(LstmLmImpl& model) const;
};

std::vector<NamedMatrix> named_matrices(const LstmLmConfig& config);
// rows x cols of a named matrix as `config` defines it (the table above's shapes), without a
// model: what a file must hold, before anything is allocated.
std::pair<int64_t, int64_t> matrix_shape(const LstmLmConfig& config, const NamedMatrix& m);
// The weights a model of `config` stores (stored_parameter_count's value, from the config alone:
// every matrix of the table once, b_ih and b_hh of each layer, the decoder's bias), in double so
// that a damaged file header's sizes cannot overflow it. Example: vocab 10, emb = hidden = 4,
// 1 layer, untied: 40 + 40 + 64 + 64 + 10 + 32 = 250.
double config_parameter_count(const LstmLmConfig& config);

// What a matrix's name says without a model: kind, layer, tied. Names: embedding, decoder,
// embedding+decoder (tied), input.l{k}, recurrent.l{k}, projection.l{k}. Throws
// std::invalid_argument listing them (whether a given model has the matrix is find_matrix's
// question).
struct MatrixName {
  MatrixKind kind = MatrixKind::kEmbedding;
  int64_t layer = -1;
  bool tied = false;
};
MatrixName parse_matrix_name(const std::string& name);
// A vocabulary matrix: its rows are the vocabulary's (the embedding, the decoder, the tied one).
bool is_vocabulary(const MatrixName& m);
bool is_vocabulary(const NamedMatrix& m);
// The matrices that quantizing the kinds `targets` covers, in named_matrices' order.
std::vector<NamedMatrix> targeted_matrices(const LstmLmConfig& config,
                                           const std::vector<MatrixKind>& targets);
// The entry named `name`; throws std::invalid_argument listing the valid names.
NamedMatrix find_matrix(const LstmLmConfig& config, const std::string& name);
// The matrix that plays kind `k` in a model of `config`: for kDecoder (or kEmbedding) of a tied
// model, "embedding+decoder"; for kInput/kRecurrent, layer `layer`'s.
NamedMatrix matrix_covering(const LstmLmConfig& config, MatrixKind k, int64_t layer = -1);
// The entry whose tensor PyTorch stores under `key` (nullptr when `key` is not a matrix).
const NamedMatrix* find_matrix_by_key(const std::vector<NamedMatrix>& table,
                                      const std::string& key);

// The tensors a checkpoint stores, under PyTorch's names in PyTorch's order: every weight of
// LstmLmImpl::named_weights() except decoder.weight when tied (it IS encoder.weight).
std::vector<std::pair<std::string, torch::Tensor>> stored_weights(const LstmLmImpl& model);
// Σ numel of stored_weights: the weights of the float model, each counted once.
int64_t stored_parameter_count(const LstmLmImpl& model);
// Multiply-adds per token of the plain model's matrix products (W_ih, W_hh, decoder).
int64_t macs_per_token(const LstmLmImpl& model);

// The activations that feed each matrix, for calibration (error-compensating rounding):
//   input.l0:       x_t = the embedding row of token t (after an OCS re-sum, before dropout)
//   input.l{k>0}:   x_t = layer k−1's h_t
//   recurrent.l{k}: h_{t−1} of layer k (the state carried in for t = 0)
//   projection.l{k}: r_t = σ(o) tanh(c_t) of layer k (before its projection)
//   decoder:        the top layer's h_t
// (the embedding has no input: a lookup). Runs the model in eval mode over `tokens` [T, B] from
// `state` (advanced as a forward pass would) and calls sink(matrix, X) for each matrix in table
// order with X [T·B, in] (rows time-major, like hidden_states' output reshaped). The model must
// have no input or recurrent expansion (a folded model is fine).
using InputSink = std::function<void(const NamedMatrix&, const torch::Tensor&)>;
void collect_matrix_inputs(LstmLmImpl& model, const torch::Tensor& tokens, LstmState& state,
                           const InputSink& sink);

}  // namespace lmquant
