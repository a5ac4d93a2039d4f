#include "engine/int8_engine.h"

#include <memory>
#include <stdexcept>

namespace lmquant {

std::string to_string(EngineKind e) { return e == EngineKind::kInt8 ? "int8" : "float"; }

EngineKind parse_engine(const std::string& s) {
  if (s == "float") return EngineKind::kFloat;
  if (s == "int8") return EngineKind::kInt8;
  throw std::invalid_argument("unknown engine '" + s + "'; valid values: float, int8");
}

EngineHooks int8_engine(QuantizedFile& f, bool lstm, bool release_float) {
  EngineHooks hooks = int8_decoder_hooks(f);
  if (lstm) {
    auto engine = std::make_shared<Int8Lstm>(f);
    hooks.hidden = [engine](const torch::Tensor& tokens, LstmState& state) {
      return engine->hidden_states(tokens, state);
    };
  }
  if (release_float) {
    torch::NoGradGuard guard;
    auto& m = *f.loaded.model;
    auto empty = torch::empty({0}, m.decoder_bias.options());
    if (lstm) {
      m.encoder.set_data(empty);
      for (auto& w : m.w_ih) w.set_data(empty);
      for (auto& w : m.w_hh) w.set_data(empty);
    }
    if (lstm || !m.config().tied) m.decoder_weight.set_data(empty);  // tied: the embedding too
    for (auto& q : f.matrices) q.codes = torch::Tensor();  // the engines hold their own copies
  }
  return hooks;
}

}  // namespace lmquant
