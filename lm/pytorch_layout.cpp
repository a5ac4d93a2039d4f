#include "lm/pytorch_layout.h"

#include <algorithm>
#include <stdexcept>

namespace lmquant {
namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// "12.rest" -> (12, "rest"); -1 when the name does not start with a layer number.
std::pair<int64_t, std::string> layer_of(const std::string& s) {
  const size_t dot = s.find('.');
  if (dot == std::string::npos || dot == 0 || dot > 5) return {-1, ""};
  const std::string n = s.substr(0, dot);
  if (n.find_first_not_of("0123456789") != std::string::npos || (n.size() > 1 && n[0] == '0'))
    return {-1, ""};
  return {std::stoll(n), s.substr(dot + 1)};
}

const char* const kLstmWeights[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"};

std::string describe_shape(const torch::Tensor& t) { return c10::str(t.sizes()); }

}  // namespace

std::string to_string(ImportFormat f) {
  switch (f) {
    case ImportFormat::kAuto:
      return "auto";
    case ImportFormat::kWordLm:
      return "word-lm";
    case ImportFormat::kAwdLstm:
      return "awd-lstm";
    case ImportFormat::kFastai:
      return "fastai";
  }
  return "?";
}

ImportFormat parse_import_format(const std::string& s) {
  for (auto f :
       {ImportFormat::kAuto, ImportFormat::kWordLm, ImportFormat::kAwdLstm, ImportFormat::kFastai})
    if (s == to_string(f)) return f;
  throw std::invalid_argument("unknown model format '" + s +
                              "'; valid values: auto, word-lm, awd-lstm, fastai");
}

CanonicalWeights canonical_weights(const std::vector<std::pair<std::string, torch::Tensor>>& file,
                                   ImportFormat forced, const std::string& path) {
  std::map<std::string, torch::Tensor> all;
  for (const auto& [name, t] : file) all[name] = t;
  // The prefix: whatever precedes the one key that ends in "encoder.weight".
  CanonicalWeights out;
  int encoders = 0;
  const std::string tail = "encoder.weight";
  for (const auto& [name, x] : file)
    if (ends_with(name, tail) &&
        (name.size() == tail.size() || name[name.size() - tail.size() - 1] == '.')) {
      out.prefix = name.substr(0, name.size() - tail.size());
      ++encoders;
    }
  if (encoders > 1)
    throw std::runtime_error(path + ": " + std::to_string(encoders) +
                             " tensors named *encoder.weight: which model is the language model?");
  const std::string& P = out.prefix;
  // fastai's SequentialRNN: the encoder under "0.", the decoder under "1.".
  const std::string base = ends_with(P, "0.") && (P.size() == 2 || P[P.size() - 3] == '.')
                               ? P.substr(0, P.size() - 2)
                               : std::string("~");
  const bool fastai_keys = base != "~" && all.count(base + "1.decoder.weight");
  bool rnns = false, rnn = false;
  for (const auto& [name, x] : file) {
    rnns = rnns || starts_with(name, P + "rnns.");
    rnn = rnn || starts_with(name, P + "rnn.");
  }
  ImportFormat f = forced;
  if (f == ImportFormat::kAuto) {
    if (rnns && rnn)
      throw std::runtime_error(path + ": both rnn.* and rnns.* keys under '" + P +
                               "': not one known layout (give --model-format)");
    f = fastai_keys ? ImportFormat::kFastai
                    : (rnns ? ImportFormat::kAwdLstm : ImportFormat::kWordLm);
  }
  out.format = f;
  const std::string decoder_prefix = f == ImportFormat::kFastai ? base + "1." : P;
  const std::string layout = to_string(f);
  auto place = [&](const std::string& canonical, const torch::Tensor& t, const std::string& from) {
    if (!out.tensors.emplace(canonical, t).second)
      throw std::runtime_error(path + ": " + from + " gives " + canonical + " a second time");
  };
  for (const auto& [name, t] : file) {
    if (f == ImportFormat::kFastai && starts_with(name, decoder_prefix) && !starts_with(name, P)) {
      const std::string k = name.substr(decoder_prefix.size());
      if (k != "decoder.weight" && k != "decoder.bias")
        throw std::runtime_error(path + ": tensor " + name + " " + describe_shape(t) +
                                 " is not part of fastai's LinearDecoder (decoder.weight, "
                                 "decoder.bias)");
      place(k, t, name);
      continue;
    }
    if (!starts_with(name, P))
      throw std::runtime_error(path + ": tensor " + name + " lies outside the model's prefix '" +
                               P + "' (a " + layout + " LSTM LM has encoder.weight, " +
                               (f == ImportFormat::kWordLm ? "rnn.*_l{k}" : "rnns.{k}.*") +
                               ", decoder.*)");
    const std::string k = name.substr(P.size());
    if (f == ImportFormat::kWordLm) {  // the names themselves; the model checks them
      place(k, t, name);
      continue;
    }
    if (k == "encoder.weight" ||
        (f == ImportFormat::kAwdLstm && (k == "decoder.weight" || k == "decoder.bias"))) {
      place(k, t, name);
      continue;
    }
    if (f == ImportFormat::kFastai && k == "encoder_dp.emb.weight") continue;  // checked below
    if (starts_with(k, "rnns.")) {
      auto [layer, rest] = layer_of(k.substr(5));
      if (starts_with(rest, "module.")) rest = rest.substr(7);
      bool raw = ends_with(rest, "_raw");
      if (raw) rest = rest.substr(0, rest.size() - 4);
      bool known = layer >= 0 && ends_with(rest, "_l0");
      std::string weight = known ? rest.substr(0, rest.size() - 3) : "";
      known = known && std::find(std::begin(kLstmWeights), std::end(kLstmWeights), weight) !=
                           std::end(kLstmWeights);
      if (!known)
        throw std::runtime_error(path + ": tensor " + name + " " + describe_shape(t) +
                                 " is not an LSTM weight of the " + layout +
                                 " layout (rnns.{k}[.module].{weight,bias}_{ih,hh}_l0[_raw])");
      const std::string canonical = "rnn." + weight + "_l" + std::to_string(layer);
      if (raw) {
        place(canonical, t, name);
        continue;
      }
      // The plain copy beside a _raw weight (WeightDrop's after an eval pass): set aside when
      // it holds the same values.
      std::string raw_name;
      for (const auto& [other, u] : file)
        if (starts_with(other, P + "rnns." + std::to_string(layer) + ".") &&
            ends_with(other, weight + "_l0_raw"))
          raw_name = other;
      if (raw_name.empty()) {
        place(canonical, t, name);
        continue;
      }
      const auto& r = all.at(raw_name);
      if (!r.sizes().equals(t.sizes()) || !torch::equal(r, t))
        throw std::runtime_error(path + ": " + name + " differs from " + raw_name +
                                 " (saved after a training-mode forward pass, with its dropout "
                                 "applied?): re-save the model after model.eval() and a forward "
                                 "pass, or drop " +
                                 name);
      out.ignored.push_back(name + " (the copy of " + raw_name + ")");
      continue;
    }
    throw std::runtime_error(path + ": tensor " + name + " " + describe_shape(t) +
                             " is not part of an " + layout +
                             " LSTM LM (encoder.weight, rnns.{k}.*, decoder.*)");
  }
  if (f == ImportFormat::kFastai) {
    const std::string alias = P + "encoder_dp.emb.weight";
    if (all.count(alias)) {
      const auto& a = all.at(alias);
      const auto it = out.tensors.find("encoder.weight");
      if (it == out.tensors.end() || !a.sizes().equals(it->second.sizes()) ||
          !torch::equal(a, it->second))
        throw std::runtime_error(path + ": " + alias +
                                 " is not the same table as the encoder's (fastai's "
                                 "EmbeddingDropout holds the encoder itself)");
      out.ignored.push_back(alias + " (EmbeddingDropout's alias of the encoder)");
    }
  }
  return out;
}

LstmLmConfig infer_config(const std::map<std::string, torch::Tensor>& t, const std::string& path) {
  auto need = [&](const std::string& key, int64_t dims) -> const torch::Tensor& {
    auto it = t.find(key);
    if (it == t.end()) {
      std::string have;
      for (const auto& kv : t) have += (have.empty() ? "" : ", ") + kv.first;
      throw std::runtime_error(path + ": missing key " + key +
                               " (an LSTM LM has encoder.weight, rnn.*_l{k}, decoder.* in "
                               "word_language_model's names; found: " +
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
  c.layers = 0;
  while (t.count("rnn.weight_ih_l" + std::to_string(c.layers))) ++c.layers;
  if (c.layers == 0) need("rnn.weight_ih_l0", 2);
  std::vector<int64_t> cells, projs;
  for (int64_t k = 0; k < c.layers; ++k) {
    const auto s = std::to_string(k);
    const auto& hh = need("rnn.weight_hh_l" + s, 2);
    if (hh.size(0) % 4 != 0 || hh.size(0) == 0)
      throw std::runtime_error(path + ": rnn.weight_hh_l" + s + " has " +
                               std::to_string(hh.size(0)) +
                               " rows, not 4 gate blocks of the cell size");
    cells.push_back(hh.size(0) / 4);
    projs.push_back(t.count("rnn.weight_hr_l" + s) ? need("rnn.weight_hr_l" + s, 2).size(0) : 0);
  }
  c.hidden = *std::max_element(cells.begin(), cells.end());
  if (std::any_of(cells.begin(), cells.end(), [&](int64_t h) { return h != c.hidden; }))
    c.layer_hidden = cells;
  if (std::any_of(projs.begin(), projs.end(), [](int64_t p) { return p > 0; }))
    c.layer_proj = projs;
  c.tied = enc.sizes().equals(dec.sizes()) && torch::equal(enc, dec);
  c.dropout = 0;  // irrelevant for evaluation; training from an import sets its own
  if (dec.size(0) != c.vocab)
    throw std::runtime_error(path + ": decoder.weight has " + std::to_string(dec.size(0)) +
                             " rows but encoder.weight has " + std::to_string(c.vocab));
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": the weights do not describe an LSTM LM (" + e.what() + ")");
  }
  return c;
}

}  // namespace lmquant
