// A weight matrix held as int8 codes for integer products: the building block of the int8 engine
// (the decoder, int8_decoder.h, and the LSTM, int8_lstm.h).
//
//   weights: codes Q [O, K] int8 (exact: codes of <= 8 bits lie in [-127, 127]) and a step s_o per
//            output row (row or tensor granularity; group steps cannot be applied after a row's
//            int32 sum, so they are refused);
//   activations: each input row x_r quantized symmetric per row on the fly (dynamic quantization),
//            a_r = max_j |x_rj| / 127,  q_x[r] = round(x_r / a_r), all-zero rows: a_r = 0, q = 0;
//   y_ro = a_r · s_o · Σ_j q_x[r, j] · Q[o, j]   (int32 accumulation, exact: lmquant's AVX2
//            kernel on CPUs without VNNI for codes of <= 7 bits, int8_gemm.h, else oneDNN's
//            s8 x s8 -> s32 matmul; engine_int8_kernel says which).
// The only error beyond the weights' own rounding is the activation rounding: |x − a·q_x| <= a/2
// per element, so |y_ro − ŷ_ro| <= (a_r / 2) · s_o · Σ_j |Q[o, j]| (tests/int8_decoder_test.cpp).
// Example: x = [0.5, -1.0] → a = 1/127, q_x = [64, -127] (63.5 rounds to even 64); Q row [3, -2],
// s = 0.1: Σ = 192 + 254 = 446, y = 446 · 0.1 / 127 = 0.35118 (float: 0.35).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "engine/int8_gemm.h"
#include "quant/quantize_model.h"

namespace lmquant {

class Int8Linear {
 public:
  Int8Linear();
  // From a QuantizedMatrix (quantize_model or read_quantized). Throws std::invalid_argument
  // naming `what` for group scales or codes outside int8.
  Int8Linear(const QuantizedMatrix& m, const std::string& what);
  ~Int8Linear();
  Int8Linear(Int8Linear&&) noexcept;
  Int8Linear& operator=(Int8Linear&&) noexcept;

  // acc [M, n] (row stride n) = q [M, K] · Q[j0 : j0 + n]ᵀ in int32. Safe to call from several
  // threads at once (inside at::parallel_for oneDNN runs on the calling thread).
  void products(const int8_t* q, int64_t M, int64_t j0, int64_t n, int32_t* acc) const;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  const float* step() const { return step_.data_ptr<float>(); }
  // int8 [O, K] where oneDNN runs them; undefined where lmquant's kernel holds them (packed).
  const torch::Tensor& codes() const { return codes_; }
  const torch::Tensor& steps() const { return step_; }  // float [O]
  size_t bytes() const;
  // Which integer product runs: "avx512_vnni", "avx_vnni", "avx2" (int8_gemm.h) or "onednn".
  std::string kernel() const;

 private:
  struct Impl;
  int64_t rows_ = 0, cols_ = 0;
  torch::Tensor codes_;
  torch::Tensor step_;
  std::unique_ptr<Impl> impl_;
};

// z[j] = acc[j] · (a · s[j]) + b[j] for j < n: one row of products back to float (b may be null).
void dequantize_products(const int32_t* acc, int64_t n, float a, const float* s, const float* b,
                         float* z);

// Per-row symmetric int8 quantization of x [N, K] (float): q [N, K] int8 and a [N] float.
std::pair<torch::Tensor, torch::Tensor> quantize_rows_int8(const torch::Tensor& x);
// The same on raw rows (row stride ld >= K), writing q (row stride qld >= K) and a; no threads.
void quantize_rows_int8(const float* x, int64_t N, int64_t K, int64_t ld, int8_t* q, int64_t qld,
                        float* a);

}  // namespace lmquant
