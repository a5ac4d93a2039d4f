#include "engine/int8_decoder.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <utility>
#include <vector>

#include "lm/nll.h"

namespace lmquant {

struct Int8Decoder::Impl {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  // One matmul per (rows, block columns): [M, K] s8 x [K, n] s8 -> [M, n] s32, weights read in
  // place from the codes ([n, K] row-major = [K, n] in "ba" layout).
  std::map<std::pair<int64_t, int64_t>, dnnl::matmul> prims;
  std::mutex mu;

  const dnnl::matmul& prim(int64_t M, int64_t K, int64_t n) {
    std::lock_guard<std::mutex> lock(mu);
    auto key = std::make_pair(M, n);
    auto it = prims.find(key);
    if (it != prims.end()) return it->second;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc src({M, K}, dt::s8, tag::ab), wei({K, n}, dt::s8, tag::ba),
        dst({M, n}, dt::s32, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), eng);
    return prims.emplace(key, dnnl::matmul(pd)).first->second;
  }
};

std::pair<torch::Tensor, torch::Tensor> quantize_rows_int8(const torch::Tensor& h_in) {
  const auto h = h_in.to(torch::kCPU, torch::kFloat).contiguous();
  TORCH_CHECK(h.dim() == 2, "quantize_rows_int8: h [N, H] expected");
  const int64_t N = h.size(0), K = h.size(1);
  auto q = torch::empty({N, K}, torch::kChar);
  auto a = torch::empty({N}, torch::kFloat);
  const float* hp = h.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* ap = a.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* row = hp + r * K;
      float mx = 0;
      for (int64_t j = 0; j < K; ++j) mx = std::max(mx, std::fabs(row[j]));
      ap[r] = mx / 127.0f;
      const float inv = mx > 0 ? 127.0f / mx : 0.0f;
      for (int64_t j = 0; j < K; ++j) {
        const float v = std::nearbyint(row[j] * inv);
        qp[r * K + j] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, v)));
      }
    }
  });
  return {q, a};
}

Int8Decoder::Int8Decoder(const QuantizedMatrix& d, const torch::Tensor& bias)
    : impl_(std::make_unique<Impl>()) {
  if (!d.codes.defined() || d.codes.dim() != 2)
    throw std::invalid_argument("int8 decoder: " + d.name + " has no codes");
  const int64_t V = d.codes.size(0);
  if (d.step.numel() != V && d.step.numel() != 1)
    throw std::invalid_argument("int8 decoder: " + d.name +
                                " has group scales; the int8 engine needs one step per row "
                                "(--granularity row or tensor)");
  const auto c = d.codes.to(torch::kCPU, torch::kInt);
  if (c.numel() > 0 && (c.min().item<int>() < -127 || c.max().item<int>() > 127))
    throw std::invalid_argument("int8 decoder: " + d.name +
                                " has codes outside [-127, 127] (over 8 bits)");
  codes_ = c.to(torch::kChar).contiguous();
  step_ = d.step.to(torch::kCPU, torch::kFloat).reshape({-1}).expand({V}).contiguous();
  bias_ = bias.to(torch::kCPU, torch::kFloat).contiguous();
  if (bias_.dim() != 1 || bias_.size(0) != V)
    throw std::invalid_argument("int8 decoder: bias of " + std::to_string(bias_.numel()) +
                                " values for " + std::to_string(V) + " rows");
}

Int8Decoder::~Int8Decoder() = default;
Int8Decoder::Int8Decoder(Int8Decoder&&) noexcept = default;
Int8Decoder& Int8Decoder::operator=(Int8Decoder&&) noexcept = default;

double Int8Decoder::nll(const torch::Tensor& h, const torch::Tensor& targets, int64_t block) const {
  TORCH_CHECK(h.dim() == 2 && h.size(1) == width(), "int8 decoder: h [N, ", width(),
              "] expected, got ", h.sizes());
  auto [q, a] = quantize_rows_int8(h);
  const int64_t N = h.size(0), K = width(), V = vocab();
  if (N == 0) return 0.0;
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* ap = a.data_ptr<float>();
  const int8_t* wp = codes_.data_ptr<int8_t>();
  const float* sp = step_.data_ptr<float>();
  const float* bp = bias_.data_ptr<float>();
  // Primitives for the full and the last block, made before the threads start.
  const int64_t full = std::min(block, V), last = V - (V - 1) / block * block;
  impl_->prim(N, K, full);
  impl_->prim(N, K, last);
  return blocked_nll(N, V, targets, block, [&](int64_t j0, int64_t n, float* z, int64_t ld) {
    thread_local std::vector<int32_t> acc;
    acc.resize(static_cast<size_t>(N * n));
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    auto& eng = impl_->eng;
    dnnl::memory src({{N, K}, dt::s8, tag::ab}, eng, const_cast<int8_t*>(qp));
    dnnl::memory wei({{K, n}, dt::s8, tag::ba}, eng, const_cast<int8_t*>(wp + j0 * K));
    dnnl::memory dst({{N, n}, dt::s32, tag::ab}, eng, acc.data());
    dnnl::stream strm(eng);
    impl_->prim(N, K, n).execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei},
                                        {DNNL_ARG_DST, dst}});
    strm.wait();
    for (int64_t r = 0; r < N; ++r) {
      const int32_t* ar = acc.data() + r * n;
      float* zr = z + r * ld;
      const float sa = ap[r];
      for (int64_t j = 0; j < n; ++j)
        zr[j] = static_cast<float>(ar[j]) * (sa * sp[j0 + j]) + bp[j0 + j];
    }
  });
}

torch::Tensor Int8Decoder::logits(const torch::Tensor& h) const {
  auto [q, a] = quantize_rows_int8(h);
  auto acc = torch::mm(q.to(torch::kFloat), codes_.to(torch::kFloat).t());  // exact below 2^24
  return acc * a.unsqueeze(1) * step_.unsqueeze(0) + bias_.unsqueeze(0);
}

std::function<double(const torch::Tensor&, const torch::Tensor&)> int8_decoder_hook(
    QuantizedFile& f) {
  auto& model = f.loaded.model;
  const std::string want = model->config().tied ? "embedding+decoder" : "decoder";
  for (const auto& m : f.matrices) {
    if (m.name != want) continue;
    auto engine = std::make_shared<Int8Decoder>(m, model->decoder_bias);
    if (m.plan.splits() > 0)
      model->expansion.decoder_idx =
          torch::tensor(m.plan.source, torch::kLong).to(model->decoder_bias.device());
    return [engine](const torch::Tensor& h, const torch::Tensor& y) { return engine->nll(h, y); };
  }
  throw std::invalid_argument(f.loaded.path + ": its " + want +
                              " matrix is not quantized; the int8 engine needs its codes");
}

}  // namespace lmquant
