// The layouts in which PyTorch LSTM language models name their weights, mapped onto one:
// pytorch/examples word_language_model's names (lm/lstm_lm.h's named_weights), from which the
// model's sizes are read (every layer its own, projections included).
//
//   layout     keys (after the trainer's prefix)                      what is set aside
//   word-lm    encoder.weight, rnn.{weight,bias}_{ih,hh}_l{k},        —
//              rnn.weight_hr_l{k} (nn.LSTM(proj_size=P)),
//              decoder.weight, decoder.bias
//   awd-lstm   encoder.weight, rnns.{k}.module.weight_ih_l0,          rnns.{k}.module.weight_hh_l0
//   (salesforce rnns.{k}.module.weight_hh_l0_raw (WeightDrop),        when _raw is there (the
//   awd-lstm-lm) rnns.{k}.module.bias_{ih,hh}_l0 (or rnns.{k}.* with   copy WeightDrop makes of it
//              no WeightDrop), decoder.weight, decoder.bias           after an eval pass)
//   fastai     0.encoder.weight, 0.rnns.{k}.weight_hh_l0_raw (v2) or  0.encoder_dp.emb.weight (the
//   (AWD_LSTM) 0.rnns.{k}.module.weight_hh_l0_raw (v1),               same table:
//   EmbeddingDropout's
//              0.rnns.{k}.module.{weight_ih,bias_ih,bias_hh}_l0,     alias), the _raw's copy
//              1.decoder.weight, 1.decoder.bias 0.rnns.{k}.module.weight_hh_l0
//
// Example: awd-lstm's "rnns.2.module.weight_hh_l0_raw" [1600, 400] becomes "rnn.weight_hh_l2",
// and layer 2's cell size is 1600 / 4 = 400. A key that no rule of the layout explains is an
// error naming it (never dropped silently); an alias or a _raw copy is set aside only when it
// holds the same values as what it duplicates (else the file is ambiguous: an error).
//
// Sources: pytorch/examples word_language_model/model.py (RNNModel); salesforce/awd-lstm-lm
// model.py and weight_drop.py; fastai text/models/awdlstm.py (AWD_LSTM, WeightDropout,
// EmbeddingDropout) — their module trees, read for the names only.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lm/lstm_lm.h"

namespace lmquant {

enum class ImportFormat { kAuto, kWordLm, kAwdLstm, kFastai };
std::string to_string(ImportFormat f);  // "auto", "word-lm", "awd-lstm", "fastai"
// Throws std::invalid_argument listing the valid values.
ImportFormat parse_import_format(const std::string& s);

struct CanonicalWeights {
  std::map<std::string, torch::Tensor> tensors;  // word-lm names
  ImportFormat format = ImportFormat::kWordLm;   // the layout found (or forced)
  std::string prefix;                            // the trainer's prefix that was stripped
  std::vector<std::string> ignored;              // each key set aside, with why
};

// The file's tensors (named as in the file) under word-lm names. `forced` kAuto recognises the
// layout from the keys. Throws std::runtime_error naming `path` and the key it cannot place.
CanonicalWeights canonical_weights(const std::vector<std::pair<std::string, torch::Tensor>>& file,
                                   ImportFormat forced, const std::string& path);

// The model's sizes from word-lm names: layers from rnn.weight_ih_l{k}, H_k = rows of
// weight_hh_l{k} / 4, P_k = rows of weight_hr_l{k}, E = columns of encoder.weight; tied when the
// decoder's values are the encoder's. Every other shape is then checked against it when the
// weights are set. Dropout 0 (a file does not record it).
LstmLmConfig infer_config(const std::map<std::string, torch::Tensor>& t, const std::string& path);

}  // namespace lmquant
