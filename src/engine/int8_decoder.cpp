#include "engine/int8_decoder.h"

#include <ATen/Parallel.h>

#include <stdexcept>
#include <utility>
#include <vector>

#include "lm/matrices.h"
#include "lm/nll.h"

namespace lmquant {

Int8Decoder::Int8Decoder(const QuantizedMatrix& d, const torch::Tensor& bias)
    : weights_(d, "int8 decoder"),
      bias_(bias.to(torch::kCPU, torch::kFloat).contiguous()),
      rot_(d.rotation.defined() ? d.rotation.to(torch::kCPU, torch::kFloat).contiguous()
                                : torch::Tensor()) {
  if (bias_.dim() != 1 || bias_.size(0) != vocab())
    throw std::invalid_argument("int8 decoder: bias of " + std::to_string(bias_.numel()) +
                                " values for " + std::to_string(vocab()) + " rows");
}

Int8Decoder::~Int8Decoder() = default;
Int8Decoder::Int8Decoder(Int8Decoder&&) noexcept = default;
Int8Decoder& Int8Decoder::operator=(Int8Decoder&&) noexcept = default;

double Int8Decoder::nll(const torch::Tensor& h, const torch::Tensor& targets, int64_t block,
                        double* rows) const {
  BlockLogits logits = block_logits(h);  // checks h and quantizes its rows
  if (h.size(0) == 0) return 0.0;
  return blocked_nll(h.size(0), vocab(), targets, block, logits, rows);
}

BlockLogits Int8Decoder::block_logits(const torch::Tensor& h) const {
  TORCH_CHECK(h.dim() == 2 && h.size(1) == width(), "int8 decoder: h [N, ", width(),
              "] expected, got ", h.sizes());
  // Named copies, not a structured binding: a lambda may not capture one before C++20 (clang).
  auto qa = quantize_rows_int8(input(h));
  torch::Tensor q = std::move(qa.first), a = std::move(qa.second);
  const int64_t N = h.size(0);
  const float* sp = weights_.step();
  const float* bp = bias_.data_ptr<float>();
  return [this, q, a, N, sp, bp](int64_t j0, int64_t n, float* z, int64_t ld) {
    thread_local std::vector<int32_t> acc;
    acc.resize(static_cast<size_t>(N * n));
    weights_.products(q.data_ptr<int8_t>(), N, j0, n, acc.data());
    const float* ap = a.data_ptr<float>();
    for (int64_t r = 0; r < N; ++r)
      dequantize_products(acc.data() + r * n, n, ap[r], sp + j0, bp + j0, z + r * ld);
  };
}

torch::Tensor Int8Decoder::row_nll(const torch::Tensor& h, const torch::Tensor& targets) const {
  auto out = torch::empty({h.size(0)}, torch::kFloat64);
  nll(h, targets, 1024, out.data_ptr<double>());
  return out;
}

torch::Tensor Int8Decoder::logits(const torch::Tensor& h) const {
  auto [q, a] = quantize_rows_int8(input(h));
  const int64_t N = h.size(0), V = vocab();
  auto acc = torch::empty({N, V}, torch::kInt);
  if (N > 0) weights_.products(q.data_ptr<int8_t>(), N, 0, V, acc.data_ptr<int32_t>());
  return acc.to(torch::kFloat) * a.unsqueeze(1) * weights_.steps().unsqueeze(0) +
         bias_.unsqueeze(0);
}

EngineHooks int8_decoder_hooks(QuantizedFile& f) {
  auto& model = f.loaded.model;
  const std::string want = matrix_covering(model->config(), MatrixKind::kDecoder).name;
  for (const auto& m : f.matrices) {
    if (m.name != want) continue;
    auto engine = std::make_shared<Int8Decoder>(m, model->decoder_bias);
    if (m.plan.splits() > 0)
      model->expansion.decoder_idx =
          torch::tensor(m.plan.source, torch::kLong).to(model->decoder_bias.device());
    EngineHooks hooks;
    hooks.decoder = [engine](const torch::Tensor& h, const torch::Tensor& y) {
      return engine->nll(h, y);
    };
    hooks.decoder_rows = [engine](const torch::Tensor& h, const torch::Tensor& y) {
      return engine->row_nll(h, y);
    };
    hooks.decoder_logits = [engine](const torch::Tensor& h) {
      // The producer holds the engine: it may outlive these hooks.
      BlockLogits inner = engine->block_logits(h);
      return BlockLogits(
          [engine, inner](int64_t j0, int64_t n, float* z, int64_t ld) { inner(j0, n, z, ld); });
    };
    return hooks;
  }
  throw std::invalid_argument(f.loaded.path + ": its " + want +
                              " matrix is not quantized; the int8 engine needs its codes");
}

}  // namespace lmquant
