// Loading and saving models: lmquant checkpoints (.lmq, see checkpoint.h) and PyTorch
// word_language_model models saved by torch.save (zip archives, read by lm/pytorch_file.h
// without Python). The format is told by the file's first bytes, not its name.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "corpus/corpus.h"
#include "corpus/tokenizer.h"
#include "corpus/vocab.h"
#include "lm/checkpoint.h"
#include "lm/lstm_lm.h"
#include "lm/pytorch_layout.h"

namespace lmquant {

struct LoadedModel {
  LstmLm model{nullptr};
  std::string path;
  std::string format;              // "lmquant" or "pytorch"
  std::string source;              // PyTorch files: what was found in it, and what was ignored
  std::string file_sha256;         // of the whole file
  std::string tokenizer = "word";  // what the checkpoint says ("word" for PyTorch files)
  std::string vocab_hash;          // empty for PyTorch files
  std::vector<std::string> vocab;  // empty unless the checkpoint carries it
  nlohmann::json meta = nlohmann::json::object();
};

// Imports an LSTM LM from any torch.save file that holds it (lm/pytorch_file.h: a state_dict,
// the pickled model, a wrapper dict) in any layout of lm/pytorch_layout.h (pytorch/examples
// word_language_model with or without projections, awd-lstm, fastai; `format` kAuto recognises
// it from the keys), under one prefix ("module.", "lm.", ...) or none; sizes and layer count from
// the shapes, tied when encoder and decoder weights are equal. Any other key is an error naming
// it; so is a missing or misshapen one. `source`, when given, receives what was found (the layout
// included) and what was ignored.
LstmLm import_pytorch_state_dict(const std::string& path,
                                 ImportFormat format = ImportFormat::kAuto);
// The same from the file's bytes; `path` names it in errors.
LstmLm import_pytorch_state_dict_bytes(const std::string& bytes, const std::string& path,
                                       std::string* source = nullptr,
                                       ImportFormat format = ImportFormat::kAuto);

// `format` applies to PyTorch files only (an lmquant checkpoint says what it holds).
LoadedModel load_model(const std::string& path, const torch::Device& device = torch::kCPU,
                       ImportFormat format = ImportFormat::kAuto);
// The same from the file's bytes; `path` names it in errors.
LoadedModel load_model_bytes(const std::string& bytes, const std::string& path,
                             const torch::Device& device = torch::kCPU,
                             ImportFormat format = ImportFormat::kAuto);

// The model of a parsed checkpoint of kind "model" (its tensors become the model's weights: no
// copy); `file_sha256` is the file's. Throws std::runtime_error naming `path`.
LoadedModel model_of_checkpoint(Checkpoint ck, const std::string& path,
                                const std::string& file_sha256,
                                const torch::Device& device = torch::kCPU);

// The checkpoint record of a model (weights under PyTorch's names, vocabulary, meta).
// `tokenizer` as Corpus::tokenizer ("word" or "spm:<sha256>").
Checkpoint model_checkpoint(const LstmLm& model, const Vocab* vocab, const nlohmann::json& meta,
                            const std::string& tokenizer = "word");
void save_model(const std::string& path, const LstmLm& model, const Vocab* vocab,
                const nlohmann::json& meta = nlohmann::json::object(),
                const std::string& tokenizer = "word");

// Throws std::runtime_error when the model cannot be evaluated on `vocab` (different size, or a
// different vocabulary hash when the checkpoint records one).
void check_vocab_matches(const LoadedModel& loaded, const Vocab& vocab);

// The model was trained with another tokenizer than the corpus's: `expected` is the model's
// ("word" or "spm:<sha256>"), `file` the .model file its checkpoint names ("" if none).
struct TokenizerMismatch : std::runtime_error {
  TokenizerMismatch(const std::string& what, std::string expected_, std::string file_)
      : std::runtime_error(what), expected(std::move(expected_)), file(std::move(file_)) {}
  std::string expected, file;
};

// Throws TokenizerMismatch when the checkpoint's tokenizer is not `tokenizer` ("word" or
// "spm:<sha256>"), naming `what` was tokenized.
void check_tokenizer_matches(const LoadedModel& loaded, const std::string& tokenizer,
                             const std::string& what = "the corpus");

// check_tokenizer_matches with the corpus's tokenizer, then check_vocab_matches.
void check_corpus_matches(const LoadedModel& loaded, const Corpus& corpus);

// The tokenizer a model was trained with: the word tokenizer, or the sentencepiece .model file
// its checkpoint names (throws std::runtime_error when it names none).
TokenizerSpec tokenizer_of(const LoadedModel& loaded);

}  // namespace lmquant
