#include "lm/model_io.h"

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

#include "lm/matrices.h"
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
    param.copy_(it->second.to(torch::kFloat));
  }
}

// Walks the opcodes of a pickle (protocols 0-5) and checks that every length-prefixed argument
// fits in the bytes that are left and that memo indices are the sequential ones a pickler writes.
// LibTorch's unpickler trusts both: it reserves whatever length a string opcode announces (a
// 2.7 KB file announcing a 1.9 GB string cost 2 GB and 7 s) and resizes its memo table to any
// LONG_BINPUT index (a 2.7 KB file took 22 GB of memory and minutes). Both found by
// tools/fuzz.sh. Throws std::runtime_error.
void check_pickle_lengths(const char* p, size_t n) {
  size_t i = 0;
  uint64_t memo = 0;  // entries put so far
  auto put = [&](uint64_t index) {
    if (index > memo)
      throw std::runtime_error("pickle memo index " + std::to_string(index) +
                               " skips ahead of the " + std::to_string(memo) + " entries stored");
    if (index == memo) ++memo;
  };
  auto need = [&](uint64_t k) {
    if (k > n - i)
      throw std::runtime_error("pickle argument of " + std::to_string(k) +
                               " bytes runs past the end of data.pkl");
  };
  auto uint_le = [&](int bytes) {
    need(bytes);
    uint64_t v = 0;
    for (int b = 0; b < bytes; ++b)
      v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i + b])) << (8 * b);
    i += bytes;
    return v;
  };
  auto line = [&] {
    const void* nl = std::memchr(p + i, '\n', n - i);
    if (!nl) throw std::runtime_error("unterminated pickle text argument");
    i = static_cast<const char*>(nl) - p + 1;
  };
  while (i < n) {
    const unsigned char op = static_cast<unsigned char>(p[i++]);
    switch (op) {
      case '.':
        return;  // STOP
      case '(':
      case '0':
      case '1':
      case '2':
      case 'N':
      case 'R':
      case 'a':
      case 'b':
      case 'd':
      case '}':
      case 'e':
      case 'l':
      case ']':
      case 'o':
      case 's':
      case 't':
      case ')':
      case 'u':
      case 'Q':
      case 0x81:
      case 0x85:
      case 0x86:
      case 0x87:
      case 0x88:
      case 0x89:
      case 0x8f:
      case 0x90:
      case 0x91:
      case 0x92:
      case 0x93:
      case 0x97:
      case 0x98:
        break;
      case 0x94:
        put(memo);
        break;  // MEMOIZE
      case 'q':
        put(uint_le(1));
        break;  // BINPUT
      case 'r':
        put(uint_le(4));
        break;  // LONG_BINPUT
      case 'p':
        put(memo);
        line();
        break;  // PUT (text index; sequential in practice)
      case 'K':
      case 'h':
      case 0x80:
      case 0x82:
        uint_le(1);
        break;
      case 'M':
      case 0x83:
        uint_le(2);
        break;
      case 'J':
      case 'j':
      case 0x84:
        uint_le(4);
        break;
      case 'G':
        uint_le(8);
        break;
      case 0x95:
        need(uint_le(8));
        break;  // FRAME: the opcodes it frames follow
      case 'I':
      case 'L':
      case 'S':
      case 'V':
      case 'F':
      case 'g':
      case 'P':
        line();
        break;
      case 'c':
      case 'i':
        line();
        line();
        break;
      case 'U':
      case 'C':
      case 0x8c:
      case 0x8a: {
        const auto k = uint_le(1);
        need(k);
        i += k;
        break;
      }
      case 'T':
      case 'B':
      case 'X':
      case 0x8b: {
        const auto k = uint_le(4);
        need(k);
        i += k;
        break;
      }
      case 0x8d:
      case 0x8e:
      case 0x96: {
        const auto k = uint_le(8);
        need(k);
        i += k;
        break;
      }
      default:
        throw std::runtime_error("unknown pickle opcode " + std::to_string(op));
    }
  }
  throw std::runtime_error("data.pkl ends without its STOP opcode");
}

// LibTorch's MemoryReadAdapter copies whatever range the zip reader asks for, even past the end
// of the buffer (a fuzz finding: a zip directory pointing outside the file read freed memory).
// This one returns short reads there, which the zip reader reports as a damaged archive.
class BoundedReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReader(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* = "") const override {
    if (pos >= bytes_.size()) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, bytes_.size() - pos));
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;
};

// The state_dict pickle of a torch.save zip archive, checked by check_pickle_lengths. Runs the
// same zip reader over the same bytes as torch::pickle_load does next, with bounded reads: an
// archive that passes here asks pickle_load for no byte outside the file either.
void check_state_dict_pickle(const std::string& bytes) {
  caffe2::serialize::PyTorchStreamReader reader(std::make_shared<BoundedReader>(bytes));
  auto [data, size] = reader.getRecord("data.pkl");
  check_pickle_lengths(static_cast<const char*>(data.get()), size);
}

}  // namespace

LstmLm import_pytorch_state_dict(const std::string& path) {
  return import_pytorch_state_dict_bytes(read_file(path), path);
}

LstmLm import_pytorch_state_dict_bytes(const std::string& bytes, const std::string& path) {
  c10::IValue value;
  try {
    check_state_dict_pickle(bytes);
    value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw std::runtime_error(path + ": not a readable PyTorch file (" + what +
                             "); expected a state_dict saved by torch.save");
  }
  if (!value.isGenericDict())
    throw std::runtime_error(path + ": the PyTorch file holds no state_dict (a dict of tensors)");
  std::map<std::string, torch::Tensor> t;
  for (const auto& kv : value.toGenericDict()) {
    if (!kv.key().isString() || !kv.value().isTensor()) continue;
    const torch::Tensor tensor = kv.value().toTensor();
    // A damaged pickle can describe a view far larger than its bytes (stride 0, sizes beyond the
    // storage): building a model of that size, or comparing it, would never end (fuzz finding).
    const double need_bytes =
        (static_cast<double>(tensor.storage_offset()) + static_cast<double>(tensor.numel())) *
        static_cast<double>(tensor.element_size());
    if (!tensor.is_non_overlapping_and_dense() ||
        need_bytes > static_cast<double>(tensor.storage().nbytes()) ||
        need_bytes > static_cast<double>(bytes.size()))
      throw std::runtime_error(path + ": tensor " + kv.key().toStringRef() + " of shape " +
                               c10::str(tensor.sizes()) +
                               " is not a dense tensor stored in the "
                               "file (a damaged state_dict)");
    t[kv.key().toStringRef()] = tensor;
  }
  auto need = [&](const std::string& key, int64_t dims) -> const torch::Tensor& {
    auto it = t.find(key);
    if (it == t.end()) {
      std::string have;
      for (const auto& kv : t) have += (have.empty() ? "" : ", ") + kv.first;
      throw std::runtime_error(path + ": missing key " + key +
                               " (a word_language_model LSTM "
                               "state_dict has encoder.weight, rnn.*_l{k}, decoder.*; found: " +
                               have + ")");
    }
    if (it->second.dim() != dims)
      throw std::runtime_error(path + ": " + key + " has shape " + c10::str(it->second.sizes()) +
                               ", expected " + std::to_string(dims) + " dimensions");
    return it->second;
  };
  LstmLmConfig c;
  const auto& enc = need("encoder.weight", 2);
  const auto& dec = need("decoder.weight", 2);
  c.vocab = enc.size(0);
  c.emb = enc.size(1);
  need("rnn.weight_hh_l0", 2);
  c.hidden = dec.size(1);  // every other shape is then checked against the config
  c.layers = 0;
  while (t.count("rnn.weight_ih_l" + std::to_string(c.layers))) ++c.layers;
  c.tied = enc.sizes().equals(dec.sizes()) && torch::equal(enc, dec);
  c.dropout = 0;  // irrelevant for evaluation; training from an import sets its own
  if (dec.size(0) != c.vocab)
    throw std::runtime_error(path + ": decoder.weight has " + std::to_string(dec.size(0)) +
                             " rows but encoder.weight has " + std::to_string(c.vocab));
  LstmLm model(c);
  set_weights(model, t, path);
  return model;
}

LoadedModel load_model(const std::string& path, const torch::Device& device) {
  return load_model_bytes(read_file(path), path, device);
}

LoadedModel load_model_bytes(const std::string& bytes, const std::string& path,
                             const torch::Device& device) {
  LoadedModel out;
  out.path = path;
  out.file_sha256 = sha256_bytes(bytes);
  const std::string head = bytes.substr(0, 8);
  if (is_checkpoint_magic(head)) {
    Checkpoint ck = parse_checkpoint(bytes, path);
    if (ck.kind != "model")
      throw std::runtime_error(path + " is a " + ck.kind + " checkpoint, not a model checkpoint");
    out.format = "lmquant";
    // A damaged header could describe a model far larger than the file: refuse it before
    // allocating (the shapes themselves are checked by set_weights).
    const auto& cfg = ck.config;
    const double V = cfg.vocab, E = cfg.emb, H = cfg.hidden;
    double expected = V * E + (cfg.tied ? 0 : V * H) + V;
    for (int64_t l = 0; l < cfg.layers; ++l) expected += 4 * H * ((l == 0 ? E : H) + H + 2);
    double held = 0;
    for (const auto& [name, t] : ck.tensors) held += static_cast<double>(t.numel());
    if (expected > held)
      throw std::runtime_error(path + ": the header describes a " + cfg.describe() + " model (" +
                               std::to_string(static_cast<long long>(expected)) +
                               " weights) but the file holds " +
                               std::to_string(static_cast<long long>(held)));
    out.model = LstmLm(ck.config);
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
    out.vocab = ck.vocab;
    out.meta = ck.meta;
  } else if (head.size() >= 4 && std::memcmp(head.data(), "PK\x03\x04", 4) == 0) {
    out.format = "pytorch";
    out.model = import_pytorch_state_dict_bytes(bytes, path);
  } else {
    throw std::runtime_error(path +
                             ": neither an lmquant checkpoint nor a PyTorch state_dict "
                             "(torch.save zip archive)");
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
