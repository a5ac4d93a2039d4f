#include "lm/lstm_lm.h"

#include <stdexcept>

namespace lmquant {

void LstmLmConfig::validate() const {
  auto positive = [](const char* name, int64_t v) {
    if (v <= 0)
      throw std::invalid_argument(std::string(name) + " must be positive, got " +
                                  std::to_string(v));
  };
  positive("vocab", vocab);
  positive("emb", emb);
  positive("hidden", hidden);
  positive("layers", layers);
  if (!(dropout >= 0 && dropout < 1))
    throw std::invalid_argument("dropout must be in [0, 1), got " + std::to_string(dropout));
  if (tied && emb != hidden)
    throw std::invalid_argument("tied weights need emb == hidden, got emb " + std::to_string(emb) +
                                " and hidden " + std::to_string(hidden));
}

nlohmann::json LstmLmConfig::to_json() const {
  return {{"vocab", vocab},   {"emb", emb},         {"hidden", hidden},
          {"layers", layers}, {"dropout", dropout}, {"tied", tied}};
}

LstmLmConfig LstmLmConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("a model config is a JSON object");
  for (const auto& [key, v] : j.items())
    if (key != "vocab" && key != "emb" && key != "hidden" && key != "layers" && key != "dropout" &&
        key != "tied")
      throw std::invalid_argument("unknown model config field '" + key + "'");
  LstmLmConfig c;
  c.vocab = j.at("vocab").get<int64_t>();
  c.emb = j.at("emb").get<int64_t>();
  c.hidden = j.at("hidden").get<int64_t>();
  c.layers = j.at("layers").get<int64_t>();
  c.dropout = j.at("dropout").get<double>();
  c.tied = j.at("tied").get<bool>();
  c.validate();
  return c;
}

std::string LstmLmConfig::describe() const {
  return std::to_string(layers) + "x" + std::to_string(hidden) + " LSTM, emb " +
         std::to_string(emb) + ", vocab " + std::to_string(vocab) + (tied ? ", tied" : ", untied");
}

bool Expansion::lstm_plain() const {
  for (const auto& t : input_idx)
    if (t.defined()) return false;
  for (const auto& t : recurrent_idx)
    if (t.defined()) return false;
  return true;
}

bool Expansion::empty() const {
  return lstm_plain() && !decoder_idx.defined() && !embedding_idx.defined();
}

LstmLmImpl::LstmLmImpl(const LstmLmConfig& config, bool initialize) : config_(config) {
  config_.validate();
  const auto V = config.vocab, E = config.emb, H = config.hidden;
  auto uniform = [initialize](torch::Tensor t, double a, double b) {
    return initialize ? t.uniform_(a, b) : t;
  };
  // pytorch/examples init: encoder and decoder uniform(-0.1, 0.1), decoder bias 0; the LSTM keeps
  // PyTorch's default uniform(-1/sqrt(H), 1/sqrt(H)).
  encoder = register_parameter("encoder_weight", uniform(torch::empty({V, E}), -0.1, 0.1));
  const double k = 1.0 / std::sqrt(static_cast<double>(H));
  for (int64_t l = 0; l < config.layers; ++l) {
    const int64_t in = l == 0 ? E : H;
    const auto s = std::to_string(l);
    w_ih.push_back(
        register_parameter("weight_ih_l" + s, uniform(torch::empty({4 * H, in}), -k, k)));
    w_hh.push_back(register_parameter("weight_hh_l" + s, uniform(torch::empty({4 * H, H}), -k, k)));
    b_ih.push_back(register_parameter("bias_ih_l" + s, uniform(torch::empty({4 * H}), -k, k)));
    b_hh.push_back(register_parameter("bias_hh_l" + s, uniform(torch::empty({4 * H}), -k, k)));
  }
  decoder_weight =
      config.tied ? encoder
                  : register_parameter("decoder_weight", uniform(torch::empty({V, H}), -0.1, 0.1));
  decoder_bias = register_parameter("decoder_bias", torch::zeros({V}));
  drop_ = register_module("drop", torch::nn::Dropout(config.dropout));
}

LstmState LstmLmImpl::init_state(int64_t batch) const {
  auto opts = torch::TensorOptions().dtype(decoder_bias.dtype()).device(device());
  return {torch::zeros({config_.layers, batch, config_.hidden}, opts),
          torch::zeros({config_.layers, batch, config_.hidden}, opts)};
}

torch::Tensor LstmLmImpl::layer_explicit(int64_t k, torch::Tensor x, torch::Tensor& h,
                                         torch::Tensor& c) {
  const auto T = x.size(0), B = x.size(1);
  const auto& in_idx = k < static_cast<int64_t>(expansion.input_idx.size()) ? expansion.input_idx[k]
                                                                            : torch::Tensor();
  const auto& hh_idx = k < static_cast<int64_t>(expansion.recurrent_idx.size())
                           ? expansion.recurrent_idx[k]
                           : torch::Tensor();
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
    auto hx = hh_idx.defined() ? torch::cat({h, h.index_select(1, hh_idx)}, 1) : h;
    auto gates = torch::addmm(xp[t], hx, w_hh_t).chunk(4, 1);
    c = torch::sigmoid(gates[1]) * c + torch::sigmoid(gates[0]) * torch::tanh(gates[2]);
    h = torch::sigmoid(gates[3]) * torch::tanh(c);
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

torch::Tensor LstmLmImpl::layers_forward(torch::Tensor x, LstmState& state) {
  const bool dropout_between = is_training() && config_.dropout > 0;
  if (!force_explicit && expansion.lstm_plain()) {
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
    auto h = state.h[l], c = state.c[l];
    x = layer_explicit(l, x, h, c);
    if (dropout_between && l + 1 < config_.layers) x = torch::dropout(x, config_.dropout, true);
    hs.push_back(h);
    cs.push_back(c);
  }
  state.h = torch::stack(hs);
  state.c = torch::stack(cs);
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
  }
  if (!config_.tied) copy->decoder_weight.set_data(decoder_weight.detach().clone());
  copy->decoder_bias.set_data(decoder_bias.detach().clone());
  copy->expansion = expansion;
  copy->force_explicit = force_explicit;
  copy->train(is_training());
  return copy;
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
