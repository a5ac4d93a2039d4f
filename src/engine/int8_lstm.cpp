#include "engine/int8_lstm.h"

#include <stdexcept>
#include <string>

#include "lm/matrices.h"
#include "util/fast_math.h"

namespace lmquant {
namespace {

// The LSTM cell on one row: gate pre-activations g [4H] (order i, f, g, o), c [H] and h [H]
// updated in place.
LMQ_INLINE void lstm_cell_body(const float* __restrict g, int64_t H, float* __restrict c,
                               float* __restrict h) {
  for (int64_t j = 0; j < H; ++j) {
    const float cj = fast_sigmoid(g[H + j]) * c[j] + fast_sigmoid(g[j]) * fast_tanh(g[2 * H + j]);
    c[j] = cj;
    h[j] = fast_sigmoid(g[3 * H + j]) * fast_tanh(cj);
  }
}
LMQ_DISPATCH(void, lstm_cell,
             (const float* __restrict g, int64_t H, float* __restrict c, float* __restrict h),
             (g, H, c, h), lstm_cell_body)

const QuantizedMatrix* find(const QuantizedFile& f, const std::string& name) {
  for (const auto& m : f.matrices)
    if (m.name == name) return &m;
  return nullptr;
}

// x [N, K] float -> q [N, K + splits] int8 with the OCS duplicates appended, a [N].
void quantize_input(const float* x, int64_t N, int64_t K, const std::vector<int64_t>& source,
                    int8_t* q, float* a) {
  const int64_t W = K + static_cast<int64_t>(source.size());
  quantize_rows_int8(x, N, K, K, q, W, a);
  for (int64_t r = 0; r < N; ++r)
    for (size_t t = 0; t < source.size(); ++t) q[r * W + K + t] = q[r * W + source[t]];
}

}  // namespace

Int8Lstm::Int8Lstm(const QuantizedFile& f) {
  const auto& model = *f.loaded.model;
  const auto& cfg = model.config();
  config_ = cfg;
  emb_ = cfg.emb;
  for (int64_t k = 0; k < cfg.layers; ++k) {
    const auto s = std::to_string(k);
    const bool projected = cfg.proj(k) > 0;
    std::vector<std::string> names{"input.l" + s, "recurrent.l" + s};
    if (projected) names.push_back("projection.l" + s);
    std::vector<const QuantizedMatrix*> m;
    for (const auto& name : names) {
      m.push_back(find(f, name));
      if (!m.back())
        throw std::invalid_argument(f.loaded.path + ": " + name +
                                    " is not quantized; the int8 LSTM needs the codes of "
                                    "every W_ih, W_hh and W_hr (quantize with --targets all)");
    }
    const QuantizedMatrix *ih = m[0], *hh = m[1];
    Layer layer{Int8Linear(*ih, "int8 LSTM"),
                Int8Linear(*hh, "int8 LSTM"),
                ih->plan.source,
                hh->plan.source,
                (model.b_ih[k] + model.b_hh[k]).to(torch::kCPU, torch::kFloat).contiguous(),
                cfg.input(k),
                cfg.cell(k),
                cfg.output(k),
                ih->rotation,  // undefined when not rotated
                hh->rotation,
                ih->rotation_seed};
    const int64_t H = layer.hidden;
    bool fits = layer.ih.rows() == 4 * H && layer.hh.rows() == 4 * H &&
                layer.ih.cols() == layer.in + static_cast<int64_t>(layer.ih_source.size()) &&
                layer.hh.cols() == layer.out + static_cast<int64_t>(layer.hh_source.size());
    if (projected) {
      layer.projected = true;
      layer.hr = Int8Linear(*m[2], "int8 LSTM");
      layer.hr_source = m[2]->plan.source;
      layer.hr_rot = m[2]->rotation;
      fits = fits && layer.hr.rows() == layer.out &&
             layer.hr.cols() == H + static_cast<int64_t>(layer.hr_source.size());
    }
    if (!fits)
      throw std::invalid_argument(f.loaded.path + ": layer " + s +
                                  "'s codes do not match the model's shape");
    layers_.push_back(std::move(layer));
  }
  const QuantizedMatrix* e = find(f, matrix_covering(cfg, MatrixKind::kEmbedding).name);
  if (e) {
    const auto c = e->codes.to(torch::kCPU);
    const bool fits8 =
        c.numel() == 0 || (c.min().item<int>() >= -128 && c.max().item<int>() <= 127);
    emb_codes_ = c.to(fits8 ? torch::kChar : torch::kShort).contiguous();
    emb_step_ = e->step.to(torch::kCPU, torch::kFloat).reshape({e->codes.size(0), -1}).contiguous();
    emb_group_ = e->group_size > 0 ? e->group_size : e->codes.size(1);
    emb_source_ = e->plan.source;
    if (e->rotation.defined()) emb_rot_ = e->rotation.contiguous(), emb_seed_ = e->rotation_seed;
    if (emb_codes_.size(1) != emb_ + static_cast<int64_t>(emb_source_.size()))
      throw std::invalid_argument(f.loaded.path + ": " + e->name +
                                  "'s codes do not match the embedding width");
  } else {
    emb_float_ = model.encoder.to(torch::kCPU, torch::kFloat).contiguous();
  }
}

size_t Int8Lstm::bytes() const {
  size_t b = 0;
  for (const auto& l : layers_) {
    b += l.ih.bytes() + l.hh.bytes() + l.bias.numel() * sizeof(float);
    if (l.projected) b += l.hr.bytes();
    for (const auto* r : {&l.ih_rot, &l.hh_rot, &l.hr_rot})
      if (r->defined()) b += r->numel() * sizeof(float);
  }
  if (emb_rot_.defined()) b += emb_rot_.numel() * sizeof(float);
  if (emb_codes_.defined())
    b += emb_codes_.numel() * emb_codes_.element_size() + emb_step_.numel() * sizeof(float);
  else
    b += emb_float_.numel() * sizeof(float);
  return b;
}

void Int8Lstm::embed(const int64_t* tok, int64_t n, float* x) const {
  const int64_t E = emb_;
  if (!emb_codes_.defined()) {
    const float* w = emb_float_.data_ptr<float>();
    for (int64_t r = 0; r < n; ++r) std::copy(w + tok[r] * E, w + (tok[r] + 1) * E, x + r * E);
    return;
  }
  const int64_t W = emb_codes_.size(1), G = emb_group_, steps = emb_step_.size(1);
  const float* st = emb_step_.data_ptr<float>();
  auto gather = [&](auto* codes) {
    for (int64_t r = 0; r < n; ++r) {
      const auto* q = codes + tok[r] * W;
      const float* s = st + tok[r] * steps;
      float* xr = x + r * E;
      for (int64_t j = 0; j < E; ++j) xr[j] = static_cast<float>(q[j]) * s[j / G];
      for (size_t t = 0; t < emb_source_.size(); ++t) {
        const int64_t j = E + static_cast<int64_t>(t);
        xr[emb_source_[t]] += static_cast<float>(q[j]) * s[j / G];
      }
    }
  };
  if (emb_codes_.scalar_type() == torch::kChar)
    gather(emb_codes_.data_ptr<int8_t>());
  else
    gather(emb_codes_.data_ptr<int16_t>());
}

torch::Tensor Int8Lstm::hidden_states(const torch::Tensor& tokens_in, LstmState& state) const {
  TORCH_CHECK(tokens_in.dim() == 2, "int8 LSTM: tokens [T, B] expected");
  const auto tokens = tokens_in.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t T = tokens.size(0), B = tokens.size(1), N = T * B;
  const int64_t L = static_cast<int64_t>(layers_.size());
  const int64_t Sh = config_.state_h_width(), Sc = config_.state_c_width();
  TORCH_CHECK(state.h.dim() == 3 && state.h.size(0) == L && state.h.size(1) == B &&
                  state.h.size(2) == Sh && state.c.dim() == 3 && state.c.size(0) == L &&
                  state.c.size(1) == B && state.c.size(2) == Sc,
              "int8 LSTM: state h [", L, ", ", B, ", ", Sh, "] and c [", L, ", ", B, ", ", Sc,
              "] expected");
  const int64_t V = emb_codes_.defined() ? emb_codes_.size(0) : emb_float_.size(0);
  const int64_t* tok = tokens.data_ptr<int64_t>();
  for (int64_t r = 0; r < N; ++r)
    TORCH_CHECK(tok[r] >= 0 && tok[r] < V, "token id ", tok[r], " outside the vocabulary of ", V);
  auto x = torch::empty({N, emb_}, torch::kFloat);
  embed(tok, N, x.data_ptr<float>());
  // x's basis: a rotated embedding gives e Q_e. Layer 0 reads it as it is when its W_ih was
  // rotated by the same Q (the same seed); otherwise x goes back to the model's basis first.
  const Layer& first = layers_.front();
  const bool folded = emb_rot_.defined() && first.ih_rot.defined() && emb_seed_ == first.ih_seed;
  if (emb_rot_.defined() && !folded) x = x.mm(emb_rot_.t());
  const auto h_in = state.h.to(torch::kCPU, torch::kFloat);
  const auto c_in = state.c.to(torch::kCPU, torch::kFloat);
  std::vector<torch::Tensor> hs, cs;
  for (int64_t k = 0; k < L; ++k) {
    const Layer& l = layers_[static_cast<size_t>(k)];
    const int64_t H = l.hidden, O = l.out;
    std::vector<int32_t> acc(static_cast<size_t>(N * 4 * H));
    std::vector<float> p(static_cast<size_t>(N * 4 * H)), a(static_cast<size_t>(N));
    // The input products of all T·B rows, with both biases.
    std::vector<int8_t> qx(static_cast<size_t>(N * l.ih.cols()));
    const auto xr = (l.ih_rot.defined() && !(k == 0 && folded) ? x.mm(l.ih_rot) : x).contiguous();
    quantize_input(xr.data_ptr<float>(), N, l.in, l.ih_source, qx.data(), a.data());
    l.ih.products(qx.data(), N, 0, 4 * H, acc.data());
    const float* bias = l.bias.data_ptr<float>();
    for (int64_t r = 0; r < N; ++r)
      dequantize_products(acc.data() + r * 4 * H, 4 * H, a[static_cast<size_t>(r)], l.ih.step(),
                          bias, p.data() + r * 4 * H);
    // The recurrence, on this layer's own h [B, out] and c [B, H].
    auto h_t = h_in[k].narrow(1, 0, O).clone(torch::MemoryFormat::Contiguous);
    auto c_t = c_in[k].narrow(1, 0, H).clone(torch::MemoryFormat::Contiguous);
    auto out = torch::empty({N, O}, torch::kFloat);
    float* o = out.data_ptr<float>();
    float* h = h_t.data_ptr<float>();
    float* c = c_t.data_ptr<float>();
    std::vector<int8_t> qh(static_cast<size_t>(B * l.hh.cols()));
    std::vector<float> gates(static_cast<size_t>(4 * H));
    auto hr = torch::empty({B, O}, torch::kFloat);  // h_{t−1} Q for a rotated W_hh
    const auto hview = torch::from_blob(h, {B, O}, torch::kFloat);
    // A projected layer's r_t [B, H] and its quantized form.
    auto r_t = torch::empty({B, l.projected ? H : 0}, torch::kFloat);
    auto rr = torch::empty({B, l.projected ? H : 0}, torch::kFloat);
    std::vector<int8_t> qr(static_cast<size_t>(l.projected ? B * l.hr.cols() : 0));
    std::vector<int32_t> acc_r(static_cast<size_t>(l.projected ? B * O : 0));
    float* rp = r_t.data_ptr<float>();
    for (int64_t t = 0; t < T; ++t) {
      if (l.hh_rot.defined()) {
        at::mm_out(hr, hview, l.hh_rot);
        quantize_input(hr.data_ptr<float>(), B, O, l.hh_source, qh.data(), a.data());
      } else {
        quantize_input(h, B, O, l.hh_source, qh.data(), a.data());
      }
      l.hh.products(qh.data(), B, 0, 4 * H, acc.data());
      for (int64_t b = 0; b < B; ++b) {
        // g = a_h · s_hh ∘ acc + p_t, then the cell.
        dequantize_products(acc.data() + b * 4 * H, 4 * H, a[static_cast<size_t>(b)], l.hh.step(),
                            p.data() + (t * B + b) * 4 * H, gates.data());
        lstm_cell(gates.data(), H, c + b * H, l.projected ? rp + b * H : h + b * H);
      }
      if (l.projected) {  // h_t = W_hr r_t from r_t's codes
        const float* rin = rp;
        if (l.hr_rot.defined()) {
          at::mm_out(rr, r_t, l.hr_rot);
          rin = rr.data_ptr<float>();
        }
        quantize_input(rin, B, H, l.hr_source, qr.data(), a.data());
        l.hr.products(qr.data(), B, 0, O, acc_r.data());
        for (int64_t b = 0; b < B; ++b)
          dequantize_products(acc_r.data() + b * O, O, a[static_cast<size_t>(b)], l.hr.step(),
                              nullptr, h + b * O);
      }
      std::copy(h, h + B * O, o + t * B * O);
    }
    hs.push_back(h_t);
    cs.push_back(c_t);
    x = out;
  }
  state = stack_state(config_, hs, cs);
  return x.view({T, B, config_.top()});
}

}  // namespace lmquant
