#include "lm/matrices.h"

#include <set>
#include <stdexcept>

namespace lmquant {

bool NamedMatrix::covers(MatrixKind k) const {
  return kind == k || (tied && k == MatrixKind::kDecoder) ||
         (kind == MatrixKind::kProjection && k == MatrixKind::kRecurrent);
}

std::vector<std::string> NamedMatrix::state_dict_keys() const {
  if (tied) return {pytorch_key, "decoder.weight"};
  return {pytorch_key};
}

torch::Tensor& NamedMatrix::weight(LstmLmImpl& m) const {
  switch (kind) {
    case MatrixKind::kEmbedding:
      return m.encoder;
    case MatrixKind::kDecoder:
      return m.decoder_weight;
    case MatrixKind::kInput:
      return m.w_ih.at(static_cast<size_t>(layer));
    case MatrixKind::kRecurrent:
      return m.w_hh.at(static_cast<size_t>(layer));
    case MatrixKind::kProjection:
      return m.w_hr.at(static_cast<size_t>(layer));
  }
  throw std::logic_error("unknown matrix kind");
}

const torch::Tensor& NamedMatrix::weight(const LstmLmImpl& m) const {
  return weight(const_cast<LstmLmImpl&>(m));
}

torch::Tensor& NamedMatrix::expansion_slot(LstmLmImpl& m) const {
  auto& e = m.expansion;
  const auto L = static_cast<size_t>(m.config().layers);
  if (e.input_idx.size() < L) e.input_idx.resize(L);
  if (e.recurrent_idx.size() < L) e.recurrent_idx.resize(L);
  if (e.projection_idx.size() < L) e.projection_idx.resize(L);
  switch (kind) {
    case MatrixKind::kEmbedding:
      return e.embedding_idx;
    case MatrixKind::kDecoder:
      return e.decoder_idx;
    case MatrixKind::kInput:
      return e.input_idx.at(static_cast<size_t>(layer));
    case MatrixKind::kRecurrent:
      return e.recurrent_idx.at(static_cast<size_t>(layer));
    case MatrixKind::kProjection:
      return e.projection_idx.at(static_cast<size_t>(layer));
  }
  throw std::logic_error("unknown matrix kind");
}

std::vector<NamedMatrix> named_matrices(const LstmLmConfig& c) {
  std::vector<NamedMatrix> t;
  if (c.tied) {
    t.push_back(
        {"embedding+decoder", "encoder.weight", MatrixKind::kEmbedding, -1, false, true, c.vocab});
  } else {
    t.push_back({"embedding", "encoder.weight", MatrixKind::kEmbedding, -1, false, false, 0});
    t.push_back({"decoder", "decoder.weight", MatrixKind::kDecoder, -1, false, false, c.vocab});
  }
  for (int64_t l = 0; l < c.layers; ++l) {
    const auto s = std::to_string(l);
    const int64_t gates = 4 * c.cell(l);
    t.push_back({"input.l" + s, "rnn.weight_ih_l" + s, MatrixKind::kInput, l, true, false, gates});
    t.push_back(
        {"recurrent.l" + s, "rnn.weight_hh_l" + s, MatrixKind::kRecurrent, l, true, false, gates});
    if (c.proj(l) > 0)
      t.push_back({"projection.l" + s, "rnn.weight_hr_l" + s, MatrixKind::kProjection, l, false,
                   false, c.proj(l)});
  }
  return t;
}

std::pair<int64_t, int64_t> matrix_shape(const LstmLmConfig& c, const NamedMatrix& m) {
  switch (m.kind) {
    case MatrixKind::kEmbedding:
      return {c.vocab, c.emb};
    case MatrixKind::kDecoder:
      return {c.vocab, c.top()};
    case MatrixKind::kInput:
      return {4 * c.cell(m.layer), c.input(m.layer)};
    case MatrixKind::kRecurrent:
      return {4 * c.cell(m.layer), c.output(m.layer)};
    case MatrixKind::kProjection:
      return {c.proj(m.layer), c.cell(m.layer)};
  }
  throw std::logic_error("matrix_shape: unknown kind");
}

double config_parameter_count(const LstmLmConfig& c) {
  double n = static_cast<double>(c.vocab);  // the decoder's bias
  for (const auto& m : named_matrices(c)) {
    const auto [rows, cols] = matrix_shape(c, m);
    n += static_cast<double>(rows) * static_cast<double>(cols);
  }
  for (int64_t l = 0; l < c.layers; ++l) n += 8.0 * static_cast<double>(c.cell(l));  // biases
  return n;
}

std::vector<NamedMatrix> targeted_matrices(const LstmLmConfig& config,
                                           const std::vector<MatrixKind>& targets) {
  std::vector<NamedMatrix> out;
  for (const auto& m : named_matrices(config)) {
    bool wanted = false;
    for (auto t : targets) wanted = wanted || m.covers(t);
    if (wanted) out.push_back(m);
  }
  return out;
}

MatrixName parse_matrix_name(const std::string& name) {
  if (name == "embedding") return {MatrixKind::kEmbedding, -1, false};
  if (name == "decoder") return {MatrixKind::kDecoder, -1, false};
  if (name == "embedding+decoder") return {MatrixKind::kEmbedding, -1, true};
  for (auto [prefix, kind] : {std::pair{std::string("input.l"), MatrixKind::kInput},
                              std::pair{std::string("recurrent.l"), MatrixKind::kRecurrent},
                              std::pair{std::string("projection.l"), MatrixKind::kProjection}}) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string k = name.substr(prefix.size());
    if (!k.empty() && k.size() < 6 && k.find_first_not_of("0123456789") == std::string::npos &&
        (k == "0" || k[0] != '0'))
      return {kind, std::stoll(k), false};
  }
  throw std::invalid_argument("'" + name +
                              "' is not a matrix name; valid names: embedding, decoder, "
                              "embedding+decoder (tied), input.l{k}, recurrent.l{k}, "
                              "projection.l{k} (LSTMP)");
}

bool is_vocabulary(const MatrixName& m) {
  return m.kind == MatrixKind::kEmbedding || m.kind == MatrixKind::kDecoder;
}

bool is_vocabulary(const NamedMatrix& m) {
  return m.kind == MatrixKind::kEmbedding || m.kind == MatrixKind::kDecoder;
}

NamedMatrix find_matrix(const LstmLmConfig& config, const std::string& name) {
  std::string valid;
  for (const auto& m : named_matrices(config)) {
    if (m.name == name) return m;
    valid += (valid.empty() ? "" : ", ") + m.name;
  }
  throw std::invalid_argument("no matrix named '" + name + "' in a " + config.describe() +
                              " model; valid names: " + valid);
}

NamedMatrix matrix_covering(const LstmLmConfig& config, MatrixKind k, int64_t layer) {
  for (const auto& m : named_matrices(config))
    if (m.covers(k) && (m.layer == layer || m.layer < 0)) return m;
  throw std::invalid_argument("no matrix of that kind at layer " + std::to_string(layer) +
                              " in a " + config.describe() + " model");
}

const NamedMatrix* find_matrix_by_key(const std::vector<NamedMatrix>& table,
                                      const std::string& key) {
  for (const auto& m : table)
    if (m.pytorch_key == key) return &m;
  return nullptr;
}

std::vector<std::pair<std::string, torch::Tensor>> stored_weights(const LstmLmImpl& model) {
  auto all = model.named_weights();
  if (!model.config().tied) return all;
  // The tied tensor once, under its own key: drop its other names.
  std::set<std::string> aliases;
  for (const auto& m : named_matrices(model.config()))
    for (const auto& k : m.state_dict_keys())
      if (k != m.pytorch_key) aliases.insert(k);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& kv : all)
    if (!aliases.count(kv.first)) out.push_back(std::move(kv));
  return out;
}

int64_t stored_parameter_count(const LstmLmImpl& model) {
  int64_t n = 0;
  for (const auto& kv : stored_weights(model)) n += kv.second.numel();
  return n;
}

int64_t macs_per_token(const LstmLmImpl& model) {
  int64_t n = model.decoder_weight.numel();
  for (int64_t l = 0; l < model.config().layers; ++l) {
    const auto L = static_cast<size_t>(l);
    n += model.w_ih[L].numel() + model.w_hh[L].numel();
    if (model.w_hr[L].defined()) n += model.w_hr[L].numel();
  }
  return n;
}

void collect_matrix_inputs(LstmLmImpl& model, const torch::Tensor& tokens, LstmState& state,
                           const InputSink& sink) {
  if (!model.expansion.lstm_plain())
    throw std::invalid_argument(
        "collect_matrix_inputs: the model has expanded W_ih/W_hh; "
        "collect on the folded model");
  torch::NoGradGuard guard;
  const auto& cfg = model.config();
  const auto table = named_matrices(cfg);
  auto emit = [&](MatrixKind kind, int64_t layer, const torch::Tensor& x) {
    for (const auto& m : table)
      if (m.kind == kind && m.layer == layer) sink(m, x.reshape({-1, x.size(-1)}));
  };
  auto x = torch::embedding(model.encoder, tokens);
  if (model.expansion.embedding_idx.defined()) {
    const auto& idx = model.expansion.embedding_idx;
    const int64_t E = x.size(-1) - idx.numel();
    x = x.narrow(-1, 0, E).index_add(-1, idx, x.narrow(-1, E, idx.numel()));
  }
  std::vector<torch::Tensor> hs, cs;
  for (int64_t l = 0; l < cfg.layers; ++l) {
    const auto L = static_cast<size_t>(l);
    auto h0 = layer_h(cfg, state, l), c0 = layer_c(cfg, state, l);
    emit(MatrixKind::kInput, l, x);
    if (!model.w_hr[L].defined()) {
      auto out = torch::lstm(x, {h0.unsqueeze(0), c0.unsqueeze(0)},
                             {model.w_ih[L], model.w_hh[L], model.b_ih[L], model.b_hh[L]},
                             /*has_biases=*/true, 1, 0.0, /*train=*/false, false, false);
      const auto& y = std::get<0>(out);  // [T, B, H]
      emit(MatrixKind::kRecurrent, l, torch::cat({h0.unsqueeze(0), y.narrow(0, 0, y.size(0) - 1)}));
      hs.push_back(std::get<1>(out)[0]);
      cs.push_back(std::get<2>(out)[0]);
      x = y;
      continue;
    }
    // A projected layer step by step: its projection reads r_t, which the fused op keeps inside.
    LstmLmImpl::LayerTrace trace;
    auto h = h0, c = c0;
    x = model.layer_explicit(l, x, h, c, &trace);
    emit(MatrixKind::kRecurrent, l, torch::stack(trace.h_in));
    emit(MatrixKind::kProjection, l, torch::stack(trace.r));
    hs.push_back(h);
    cs.push_back(c);
  }
  // The decoder reads the top h_t (the tied matrix's decoder role included).
  for (const auto& m : table)
    if (m.covers(MatrixKind::kDecoder)) sink(m, x.reshape({-1, x.size(-1)}));
  state = stack_state(cfg, hs, cs);
}

}  // namespace lmquant
