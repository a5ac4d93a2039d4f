#include "lm/lstm_lm.h"

#include <algorithm>
#include <stdexcept>

namespace lmquant {

int64_t LstmLmConfig::cell(int64_t k) const {
  return layer_hidden.empty() ? hidden : layer_hidden.at(static_cast<size_t>(k));
}

int64_t LstmLmConfig::proj(int64_t k) const {
  return layer_proj.empty() ? 0 : layer_proj.at(static_cast<size_t>(k));
}

int64_t LstmLmConfig::output(int64_t k) const { return proj(k) > 0 ? proj(k) : cell(k); }

int64_t LstmLmConfig::input(int64_t k) const { return k == 0 ? emb : output(k - 1); }

int64_t LstmLmConfig::top() const { return output(layers - 1); }

bool LstmLmConfig::projected() const {
  for (auto p : layer_proj)
    if (p > 0) return true;
  return false;
}

int64_t LstmLmConfig::state_h_width() const {
  int64_t w = 0;
  for (int64_t k = 0; k < layers; ++k) w = std::max(w, output(k));
  return w;
}

int64_t LstmLmConfig::state_c_width() const {
  int64_t w = 0;
  for (int64_t k = 0; k < layers; ++k) w = std::max(w, cell(k));
  return w;
}

void LstmLmConfig::validate() const {
  auto positive = [](const std::string& name, int64_t v) {
    if (v <= 0) throw std::invalid_argument(name + " must be positive, got " + std::to_string(v));
  };
  positive("vocab", vocab);
  positive("emb", emb);
  positive("hidden", hidden);
  positive("layers", layers);
  if (!(dropout >= 0 && dropout < 1))
    throw std::invalid_argument("dropout must be in [0, 1), got " + std::to_string(dropout));
  if (!layer_hidden.empty()) {
    if (static_cast<int64_t>(layer_hidden.size()) != layers)
      throw std::invalid_argument("layer_hidden has " + std::to_string(layer_hidden.size()) +
                                  " sizes for " + std::to_string(layers) + " layers");
    int64_t largest = 0;
    for (size_t k = 0; k < layer_hidden.size(); ++k) {
      positive("layer_hidden[" + std::to_string(k) + "]", layer_hidden[k]);
      largest = std::max(largest, layer_hidden[k]);
    }
    if (hidden != largest)
      throw std::invalid_argument("hidden must be the largest of layer_hidden (" +
                                  std::to_string(largest) + "), got " + std::to_string(hidden));
  }
  if (!layer_proj.empty()) {
    if (static_cast<int64_t>(layer_proj.size()) != layers)
      throw std::invalid_argument("layer_proj has " + std::to_string(layer_proj.size()) +
                                  " sizes for " + std::to_string(layers) + " layers");
    for (int64_t k = 0; k < layers; ++k)
      if (proj(k) < 0 || proj(k) >= cell(k))
        throw std::invalid_argument("layer_proj[" + std::to_string(k) +
                                    "] must be 0 (none) or in (0, " + std::to_string(cell(k)) +
                                    "), the layer's cell size; got " + std::to_string(proj(k)));
  }
  if (tied && emb != top())
    throw std::invalid_argument("tied weights need emb == the top layer's output width, got emb " +
                                std::to_string(emb) + " and " + std::to_string(top()));
}

nlohmann::json LstmLmConfig::to_json() const {
  nlohmann::json j = {{"vocab", vocab},   {"emb", emb},         {"hidden", hidden},
                      {"layers", layers}, {"dropout", dropout}, {"tied", tied}};
  if (!layer_hidden.empty()) j["layer_hidden"] = layer_hidden;
  if (!layer_proj.empty()) j["layer_proj"] = layer_proj;
  return j;
}

LstmLmConfig LstmLmConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("a model config is a JSON object");
  for (const auto& [key, v] : j.items())
    if (key != "vocab" && key != "emb" && key != "hidden" && key != "layers" && key != "dropout" &&
        key != "tied" && key != "layer_hidden" && key != "layer_proj")
      throw std::invalid_argument("unknown model config field '" + key + "'");
  LstmLmConfig c;
  c.vocab = j.at("vocab").get<int64_t>();
  c.emb = j.at("emb").get<int64_t>();
  c.hidden = j.at("hidden").get<int64_t>();
  c.layers = j.at("layers").get<int64_t>();
  c.dropout = j.at("dropout").get<double>();
  c.tied = j.at("tied").get<bool>();
  if (j.contains("layer_hidden")) c.layer_hidden = j.at("layer_hidden").get<std::vector<int64_t>>();
  if (j.contains("layer_proj")) c.layer_proj = j.at("layer_proj").get<std::vector<int64_t>>();
  if (c.layers > 4096) throw std::invalid_argument("layers must be at most 4096");
  c.validate();
  return c;
}

std::string LstmLmConfig::describe() const {
  std::string shape;
  if (layer_hidden.empty()) {
    shape = std::to_string(layers) + "x" + std::to_string(hidden);
  } else {
    shape = std::to_string(layers) + "-layer";
  }
  shape += projected() ? " LSTMP" : " LSTM";
  if (!layer_hidden.empty()) {
    std::string sizes;
    for (auto h : layer_hidden) sizes += (sizes.empty() ? "" : ",") + std::to_string(h);
    shape += " " + sizes;
  }
  if (projected()) {
    std::string sizes;
    for (int64_t k = 0; k < layers; ++k) sizes += (k ? "," : "") + std::to_string(proj(k));
    shape += " (proj " + sizes + ")";
  }
  return shape + ", emb " + std::to_string(emb) + ", vocab " + std::to_string(vocab) +
         (tied ? ", tied" : ", untied");
}

bool Expansion::lstm_plain() const {
  for (const auto& t : input_idx)
    if (t.defined()) return false;
  for (const auto& t : recurrent_idx)
    if (t.defined()) return false;
  for (const auto& t : projection_idx)
    if (t.defined()) return false;
  return true;
}

bool Expansion::empty() const {
  return lstm_plain() && !decoder_idx.defined() && !embedding_idx.defined();
}

LstmLmImpl::LstmLmImpl(const LstmLmConfig& config, bool initialize) : config_(config) {
  config_.validate();
  const auto V = config.vocab, E = config.emb, D = config.top();
  auto uniform = [initialize](torch::Tensor t, double a, double b) {
    return initialize ? t.uniform_(a, b) : t;
  };
  // pytorch/examples init: encoder and decoder uniform(-0.1, 0.1), decoder bias 0; the LSTM keeps
  // PyTorch's default uniform(-1/sqrt(H_k), 1/sqrt(H_k)).
  encoder = register_parameter("encoder_weight", uniform(torch::empty({V, E}), -0.1, 0.1));
  for (int64_t l = 0; l < config.layers; ++l) {
    const int64_t H = config.cell(l), in = config.input(l), out = config.output(l);
    const double k = 1.0 / std::sqrt(static_cast<double>(H));
    const auto s = std::to_string(l);
    w_ih.push_back(
        register_parameter("weight_ih_l" + s, uniform(torch::empty({4 * H, in}), -k, k)));
    w_hh.push_back(
        register_parameter("weight_hh_l" + s, uniform(torch::empty({4 * H, out}), -k, k)));
    b_ih.push_back(register_parameter("bias_ih_l" + s, uniform(torch::empty({4 * H}), -k, k)));
    b_hh.push_back(register_parameter("bias_hh_l" + s, uniform(torch::empty({4 * H}), -k, k)));
    w_hr.push_back(config.proj(l) > 0 ? register_parameter("weight_hr_l" + s,
                                                           uniform(torch::empty({out, H}), -k, k))
                                      : torch::Tensor());
  }
  decoder_weight =
      config.tied ? encoder
                  : register_parameter("decoder_weight", uniform(torch::empty({V, D}), -0.1, 0.1));
  decoder_bias = register_parameter("decoder_bias", torch::zeros({V}));
  drop_ = register_module("drop", torch::nn::Dropout(config.dropout));
}

LstmState LstmLmImpl::init_state(int64_t batch) const {
  auto opts = torch::TensorOptions().dtype(decoder_bias.dtype()).device(device());
  return {torch::zeros({config_.layers, batch, config_.state_h_width()}, opts),
          torch::zeros({config_.layers, batch, config_.state_c_width()}, opts)};
}

torch::Tensor LstmLmImpl::layer_explicit(int64_t k, torch::Tensor x, torch::Tensor& h,
                                         torch::Tensor& c, LayerTrace* trace) {
  const auto T = x.size(0), B = x.size(1);
  const auto& in_idx = k < static_cast<int64_t>(expansion.input_idx.size()) ? expansion.input_idx[k]
                                                                            : torch::Tensor();
  const auto& hh_idx = k < static_cast<int64_t>(expansion.recurrent_idx.size())
                           ? expansion.recurrent_idx[k]
                           : torch::Tensor();
  const auto& hr_idx = k < static_cast<int64_t>(expansion.projection_idx.size())
                           ? expansion.projection_idx[k]
                           : torch::Tensor();
  const auto& w_hr_k = w_hr.at(static_cast<size_t>(k));
  if (in_idx.defined()) x = torch::cat({x, x.index_select(2, in_idx)}, 2);
  if (x.size(2) != w_ih[k].size(1))
    throw std::invalid_argument("layer " + std::to_string(k) + ": input width " +
                                std::to_string(x.size(2)) + " does not match W_ih's " +
                                std::to_string(w_ih[k].size(1)) + " columns");
  // The input projection of all time steps as one matrix product.
  auto xp =
      torch::addmm(b_ih[k] + b_hh[k], x.reshape({T * B, x.size(2)}), w_ih[k].t()).view({T, B, -1});
  const auto w_hh_t = w_hh[k].t();
  std::vector<torch::Tensor> outs;
  outs.reserve(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    if (trace) trace->h_in.push_back(h);
    auto hx = hh_idx.defined() ? torch::cat({h, h.index_select(1, hh_idx)}, 1) : h;
    auto gates = torch::addmm(xp[t], hx, w_hh_t).chunk(4, 1);
    c = torch::sigmoid(gates[1]) * c + torch::sigmoid(gates[0]) * torch::tanh(gates[2]);
    h = torch::sigmoid(gates[3]) * torch::tanh(c);
    if (w_hr_k.defined()) {
      if (trace) trace->r.push_back(h);
      const auto r = hr_idx.defined() ? torch::cat({h, h.index_select(1, hr_idx)}, 1) : h;
      h = r.mm(w_hr_k.t());
    }
    outs.push_back(h);
  }
  return torch::stack(outs);
}

std::string LstmLmImpl::first_nonfinite_weight() const {
  torch::NoGradGuard guard;
  for (const auto& [name, w] : named_weights())
    if (w.numel() > 0 && w.is_floating_point() && !torch::isfinite(w).all().item<bool>())
      return name;
  return "";
}

void LstmLmImpl::set_dropout(double p) {
  LstmLmConfig c = config_;
  c.dropout = p;
  c.validate();
  config_ = c;
  drop_->options.p(p);
}

torch::Tensor LstmLmImpl::embed(const torch::Tensor& tokens) const {
  auto x = torch::embedding(encoder, tokens);
  if (expansion.embedding_idx.defined()) {
    const int64_t E = x.size(-1) - expansion.embedding_idx.numel();
    x = x.narrow(-1, 0, E).index_add(-1, expansion.embedding_idx,
                                     x.narrow(-1, E, expansion.embedding_idx.numel()));
  }
  return x;
}

torch::Tensor LstmLmImpl::hidden_states(const torch::Tensor& tokens, LstmState& state) {
  return layers_forward(drop_(embed(tokens)), state);
}

torch::Tensor LstmLmImpl::layer_fused(int64_t k, const torch::Tensor& x, torch::Tensor& h,
                                      torch::Tensor& c) {
  const auto K = static_cast<size_t>(k);
  std::vector<torch::Tensor> params{w_ih[K], w_hh[K], b_ih[K], b_hh[K]};
  if (w_hr[K].defined()) params.push_back(w_hr[K]);  // LibTorch reads a projection from h0's width
  auto out = torch::lstm(x, {h.unsqueeze(0), c.unsqueeze(0)}, params, /*has_biases=*/true, 1, 0.0,
                         is_training(), /*bidirectional=*/false, /*batch_first=*/false);
  h = std::get<1>(out)[0];
  c = std::get<2>(out)[0];
  return std::get<0>(out);
}

torch::Tensor LstmLmImpl::layers_forward(torch::Tensor x, LstmState& state) {
  const bool dropout_between = is_training() && config_.dropout > 0;
  const bool fused = !force_explicit && expansion.lstm_plain();
  if (fused && config_.uniform()) {
    std::vector<torch::Tensor> params;
    for (int64_t l = 0; l < config_.layers; ++l)
      params.insert(params.end(), {w_ih[l], w_hh[l], b_ih[l], b_hh[l]});
    auto out = torch::lstm(x, {state.h, state.c}, params, /*has_biases=*/true, config_.layers,
                           config_.dropout, is_training(), /*bidirectional=*/false,
                           /*batch_first=*/false);
    state.h = std::get<1>(out);
    state.c = std::get<2>(out);
    return std::get<0>(out);
  }
  std::vector<torch::Tensor> hs, cs;
  for (int64_t l = 0; l < config_.layers; ++l) {
    auto h = layer_h(config_, state, l), c = layer_c(config_, state, l);
    x = fused ? layer_fused(l, x, h, c) : layer_explicit(l, x, h, c);
    if (dropout_between && l + 1 < config_.layers) x = torch::dropout(x, config_.dropout, true);
    hs.push_back(h);
    cs.push_back(c);
  }
  state = stack_state(config_, hs, cs);
  return x;
}

torch::Tensor LstmLmImpl::decoder_input(const torch::Tensor& top) const {
  auto h = expansion.decoder_idx.defined()
               ? torch::cat({top, top.index_select(top.dim() - 1, expansion.decoder_idx)}, -1)
               : top;
  return h.reshape({-1, h.size(-1)});
}

torch::Tensor LstmLmImpl::logits(const torch::Tensor& top) const {
  return torch::addmm(decoder_bias, decoder_input(top), decoder_weight.t());
}

torch::Tensor LstmLmImpl::forward(const torch::Tensor& tokens, LstmState& state) {
  return logits(drop_(hidden_states(tokens, state)));
}

std::vector<std::pair<std::string, torch::Tensor>> LstmLmImpl::named_weights() const {
  std::vector<std::pair<std::string, torch::Tensor>> out{{"encoder.weight", encoder}};
  for (int64_t l = 0; l < config_.layers; ++l) {
    const auto s = std::to_string(l);
    out.emplace_back("rnn.weight_ih_l" + s, w_ih[l]);
    out.emplace_back("rnn.weight_hh_l" + s, w_hh[l]);
    out.emplace_back("rnn.bias_ih_l" + s, b_ih[l]);
    out.emplace_back("rnn.bias_hh_l" + s, b_hh[l]);
    if (w_hr[l].defined()) out.emplace_back("rnn.weight_hr_l" + s, w_hr[l]);
  }
  out.emplace_back("decoder.weight", decoder_weight);
  out.emplace_back("decoder.bias", decoder_bias);
  return out;
}

void LstmLmImpl::copy_weights_from(const LstmLmImpl& source) {
  torch::NoGradGuard guard;
  auto dst = named_weights();
  auto src = source.named_weights();
  for (size_t i = 0; i < dst.size(); ++i) {
    if (!dst[i].second.sizes().equals(src[i].second.sizes()))
      throw std::invalid_argument(dst[i].first + ": shape mismatch");
    dst[i].second.copy_(src[i].second);
  }
}

std::shared_ptr<LstmLmImpl> LstmLmImpl::clone_model() const {
  auto copy = std::make_shared<LstmLmImpl>(config_);
  copy->to(device());
  // Expanded matrices may be wider than the config's: replace tensors, not values.
  torch::NoGradGuard guard;
  copy->encoder.set_data(encoder.detach().clone());
  for (int64_t l = 0; l < config_.layers; ++l) {
    copy->w_ih[l].set_data(w_ih[l].detach().clone());
    copy->w_hh[l].set_data(w_hh[l].detach().clone());
    copy->b_ih[l].set_data(b_ih[l].detach().clone());
    copy->b_hh[l].set_data(b_hh[l].detach().clone());
    if (w_hr[l].defined()) copy->w_hr[l].set_data(w_hr[l].detach().clone());
  }
  if (!config_.tied) copy->decoder_weight.set_data(decoder_weight.detach().clone());
  copy->decoder_bias.set_data(decoder_bias.detach().clone());
  copy->expansion = expansion;
  copy->force_explicit = force_explicit;
  copy->train(is_training());
  return copy;
}

std::vector<int64_t> parse_layer_sizes(const std::string& list, int64_t layers) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t end = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, end - start);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0)
      throw std::invalid_argument(
          "'" + list + "': give one size per layer, e.g. 1150,1150,400 (or one for all)");
    out.push_back(v);
    start = end + 1;
  }
  if (out.size() == 1 && layers > 1) out.assign(static_cast<size_t>(layers), out[0]);
  if (static_cast<int64_t>(out.size()) != layers)
    throw std::invalid_argument("'" + list + "' gives " + std::to_string(out.size()) +
                                " sizes for " + std::to_string(layers) + " layers");
  return out;
}

torch::Tensor layer_h(const LstmLmConfig& c, const LstmState& s, int64_t k) {
  const auto w = c.output(k);
  return w == s.h.size(2) ? s.h[k] : s.h[k].narrow(1, 0, w);
}

torch::Tensor layer_c(const LstmLmConfig& c, const LstmState& s, int64_t k) {
  const auto w = c.cell(k);
  return w == s.c.size(2) ? s.c[k] : s.c[k].narrow(1, 0, w);
}

LstmState stack_state(const LstmLmConfig& c, const std::vector<torch::Tensor>& h,
                      const std::vector<torch::Tensor>& c_) {
  auto pad = [](const std::vector<torch::Tensor>& xs, int64_t width) {
    std::vector<torch::Tensor> out;
    for (const auto& x : xs)
      out.push_back(x.size(1) == width ? x : torch::constant_pad_nd(x, {0, width - x.size(1)}));
    return torch::stack(out);
  };
  return {pad(h, c.state_h_width()), pad(c_, c.state_c_width())};
}

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name == "auto") {
    if (torch::cuda::is_available()) return torch::kCUDA;
    if (name == "auto") return torch::kCPU;
    throw std::invalid_argument(
        "device cuda: this LibTorch has no usable CUDA device (Debian's libtorch is CPU-only; "
        "build against a CUDA LibTorch, see tools/gpu_check.sh)");
  }
  throw std::invalid_argument("unknown device '" + name + "'; valid values: auto, cpu, cuda");
}

}  // namespace lmquant
