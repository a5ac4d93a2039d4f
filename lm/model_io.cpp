#include "lm/model_io.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

#include "lm/matrices.h"
#include "lm/pytorch_file.h"
#include "lm/pytorch_layout.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace lmquant {
namespace {

void set_weights(LstmLm& model, const std::map<std::string, torch::Tensor>& tensors,
                 const std::string& path) {
  torch::NoGradGuard guard;
  for (auto& [name, param] : stored_weights(*model)) {
    auto it = tensors.find(name);
    if (it == tensors.end()) throw std::runtime_error(path + ": missing tensor " + name);
    if (!it->second.sizes().equals(param.sizes()))
      throw std::runtime_error(path + ": tensor " + name + " has shape " +
                               c10::str(it->second.sizes()) + ", expected " +
                               c10::str(param.sizes()));
    check_finite(path, name, it->second);
    // The file's tensor becomes the parameter (no second copy of the weights: a WikiText-103
    // vocabulary's table alone is 400 MB); a float16/float64 one is converted first.
    param.set_data(it->second.to(torch::kFloat).contiguous());
  }
}

}  // namespace

LstmLm import_pytorch_state_dict(const std::string& path, ImportFormat format) {
  return import_pytorch_state_dict_bytes(read_file(path), path, nullptr, format);
}

LstmLm import_pytorch_state_dict_bytes(const std::string& bytes, const std::string& path,
                                       std::string* source, ImportFormat format) {
  PyTorchTensors file = read_pytorch_tensors(bytes, path);
  for (const auto& [name, tensor] : file.tensors) {
    // A damaged pickle can describe a view far larger than its bytes (stride 0, sizes beyond the
    // storage): building a model of that size, or comparing it, would never end (fuzz finding).
    if (!tensor.is_non_overlapping_and_dense())
      throw std::runtime_error(path + ": tensor " + name + " of shape " + c10::str(tensor.sizes()) +
                               " is not a dense tensor stored in the file (a damaged file)");
    if (!tensor.is_floating_point())
      throw std::runtime_error(path + ": tensor " + name + " is " +
                               std::string(c10::toString(tensor.scalar_type())) +
                               ", not a floating-point weight");
  }
  CanonicalWeights cw = canonical_weights(file.tensors, format, path);
  const auto& t = cw.tensors;
  if (source) {
    *source = file.found + ", " + to_string(cw.format) + " layout" +
              (cw.prefix.empty() ? "" : ", names under '" + cw.prefix + "'");
    for (const auto& x : file.ignored) *source += "; ignored " + x;
    for (const auto& x : cw.ignored) *source += "; ignored " + x;
  }
  const LstmLmConfig c = infer_config(t, path);
  LstmLm model(c, /*initialize=*/false);  // every weight is set below
  std::set<std::string> known;
  for (const auto& [name, w] : model->named_weights()) known.insert(name);
  for (const auto& [name, x] : t)
    if (!known.count(name))
      throw std::runtime_error(
          path + ": tensor " + cw.prefix + name + " " + c10::str(x.sizes()) + " is not part of a " +
          c.describe() + " (encoder.weight, " +
          "rnn.{weight,bias}_{ih,hh}_l{k}, rnn.weight_hr_l{k}, decoder.weight, "
          "decoder.bias)");
  set_weights(model, t, path);
  return model;
}

LoadedModel model_of_checkpoint(Checkpoint ck, const std::string& path,
                                const std::string& file_sha256, const torch::Device& device) {
  LoadedModel out;
  out.path = path;
  out.file_sha256 = file_sha256;
  if (ck.kind != "model")
    throw std::runtime_error(path + " is a " + ck.kind + " checkpoint, not a model checkpoint");
  out.format = "lmquant";
  // A damaged header could describe a model far larger than the file: refuse it before
  // allocating (the shapes themselves are checked by set_weights).
  const auto& cfg = ck.config;
  const double expected = config_parameter_count(cfg);
  double held = 0;
  for (const auto& [name, t] : ck.tensors) held += static_cast<double>(t.numel());
  if (expected > held)
    throw std::runtime_error(path + ": the header describes a " + cfg.describe() + " model (" +
                             std::to_string(static_cast<long long>(expected)) +
                             " weights) but the file holds " +
                             std::to_string(static_cast<long long>(held)));
  out.model = LstmLm(ck.config, /*initialize=*/false);  // every weight is set below
  std::map<std::string, torch::Tensor> t(ck.tensors.begin(), ck.tensors.end());
  // Exactly the model's weights (float32), and a training run's state in a resumable file.
  std::set<std::string> names;
  for (const auto& [name, w] : stored_weights(*out.model)) {
    names.insert(name);
    if (t.count(name) && t.at(name).scalar_type() != torch::kFloat)
      throw std::runtime_error(path + ": tensor " + name + " is not float32");
  }
  if (ck.meta.contains("train_state"))
    for (const char* k : {"train.hidden_h", "train.hidden_c", "train.rng_state"}) names.insert(k);
  for (const auto& [name, x] : ck.tensors)
    if (!names.count(name))
      throw std::runtime_error(path + ": unknown tensor " + name + " in a model checkpoint");
  set_weights(out.model, t, path);
  out.tokenizer = ck.tokenizer;
  out.vocab_hash = ck.vocab_hash;
  out.vocab = std::move(ck.vocab);
  out.meta = std::move(ck.meta);
  out.model->to(device);
  out.model->eval();
  return out;
}

LoadedModel load_model(const std::string& path, const torch::Device& device, ImportFormat format) {
  return load_model_bytes(read_file(path), path, device, format);
}

LoadedModel load_model_bytes(const std::string& bytes, const std::string& path,
                             const torch::Device& device, ImportFormat format) {
  LoadedModel out;
  out.path = path;
  out.file_sha256 = sha256_bytes(bytes);
  const std::string head = bytes.substr(0, 8);
  if (is_checkpoint_magic(head))
    return model_of_checkpoint(parse_checkpoint(bytes, path), path, out.file_sha256, device);
  if ((head.size() >= 4 && std::memcmp(head.data(), "PK\x03\x04", 4) == 0) ||
      (head.size() >= 2 && std::memcmp(head.data(), "\x80\x02", 2) == 0)) {
    // A zip archive, or a bare pickle: torch.save before PyTorch 1.6 (refused with the re-save).
    out.format = "pytorch";
    out.model = import_pytorch_state_dict_bytes(bytes, path, &out.source, format);
  } else {
    throw std::runtime_error(path +
                             ": neither an lmquant checkpoint nor a PyTorch file "
                             "(a torch.save zip archive)");
  }
  out.model->to(device);
  out.model->eval();
  return out;
}

Checkpoint model_checkpoint(const LstmLm& model, const Vocab* vocab, const nlohmann::json& meta,
                            const std::string& tokenizer) {
  Checkpoint ck;
  ck.config = model->config();
  ck.tokenizer = tokenizer;
  if (vocab) {
    ck.vocab_hash = vocab->hash();
    ck.vocab = vocab->words();
  }
  ck.meta = meta;
  for (const auto& [name, t] : stored_weights(*model)) ck.tensors.emplace_back(name, t);
  return ck;
}

void save_model(const std::string& path, const LstmLm& model, const Vocab* vocab,
                const nlohmann::json& meta, const std::string& tokenizer) {
  save_checkpoint(path, model_checkpoint(model, vocab, meta, tokenizer));
}

void check_vocab_matches(const LoadedModel& loaded, const Vocab& vocab) {
  const int64_t V = loaded.model->config().vocab;
  if (V != vocab.size())
    throw std::runtime_error(loaded.path + ": the model has a vocabulary of " + std::to_string(V) +
                             " words but the corpus has " + std::to_string(vocab.size()) +
                             "; use the corpus the model was trained on");
  if (!loaded.vocab_hash.empty() && loaded.vocab_hash != vocab.hash())
    throw std::runtime_error(loaded.path +
                             ": the model was trained on a different vocabulary "
                             "(hash " +
                             loaded.vocab_hash.substr(0, 12) + " vs the corpus's " +
                             vocab.hash().substr(0, 12) + "); use the corpus it was trained on");
}

void check_tokenizer_matches(const LoadedModel& loaded, const std::string& tokenizer,
                             const std::string& what) {
  if (loaded.tokenizer != tokenizer) {
    auto describe = [](const std::string& t) {
      return t == "word" ? std::string("the word tokenizer")
                         : "the sentencepiece model with SHA-256 " + t.substr(4, 12) + "...";
    };
    std::string file;
    if (loaded.meta.contains("tokenizer_path") && loaded.tokenizer != "word")
      file = loaded.meta["tokenizer_path"].get<std::string>();
    throw TokenizerMismatch(loaded.path + ": the model was trained with " +
                                describe(loaded.tokenizer) + " but " + what +
                                " is tokenized with " + describe(tokenizer) +
                                (file.empty() ? "" : " (its file: " + file + ")"),
                            loaded.tokenizer, file);
  }
}

void check_corpus_matches(const LoadedModel& loaded, const Corpus& corpus) {
  check_tokenizer_matches(loaded, corpus.tokenizer);
  check_vocab_matches(loaded, corpus.vocab);
}

TokenizerSpec tokenizer_of(const LoadedModel& loaded) {
  if (loaded.tokenizer == "word") return {};
  const std::string recorded = loaded.meta.value("tokenizer_path", "");
  if (recorded.empty())
    throw std::runtime_error(loaded.path +
                             " was trained with a sentencepiece model but does not "
                             "name its file; give its .model file (--tokenizer spm:PATH)");
  return {TokenizerSpec::Kind::kSpm, recorded};
}

}  // namespace lmquant
