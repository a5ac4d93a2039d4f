// A weight matrix held as int8 codes for integer products: the building block of the int8 engine
// (the decoder, int8_decoder.h, and the LSTM, int8_lstm.h).
//
//   weights: codes Q [O, K] int8 (exact: codes of <= 8 bits lie in [-127, 127]) and a step s_o per
//            output row (row or tensor granularity; group steps cannot be applied after a row's
//            int32 sum, so they are refused);
//   activations: each input row x_r quantized symmetric per row on the fly (dynamic quantization),
//            a_r = max_j |x_rj| / 127,  q_x[r] = round(x_r / a_r), all-zero rows: a_r = 0, q = 0;
//   y_ro = a_r · s_o · Σ_j q_x[r, j] · Q[o, j]   (int32 accumulation, exact: lmquant's AVX2
//            kernel on CPUs with AVX2 but no VNNI, int8_gemm.h, else oneDNN's s8 x s8 -> s32
//            matmul; engine_int8_kernel says which).
// Exact on every CPU. Without VNNI x86's integer product is vpmaddubsw, which adds two u8 x s8
// products in int16 and SATURATES; oneDNN's AVX2 and SSE4.1 int8 paths use it with the
// activations shifted to u = q_x + 128 <= 255, so they are exact only for |Q| <= 64
// (2 · 255 · 64 = 32,640 <= 32,767). lmquant's avx2 kernel handles 8-bit codes itself (its
// signed form, int8_gemm.h); on oneDNN without VNNI (a CPU without AVX2, or LMQUANT_INT8_ISA=
// reference there) a matrix with larger codes runs as one of twice the depth: Q = Q1 + Q2 with
// Q1 = trunc(Q / 2), Q2 = Q − Q1, both in [-64, 64], and [q_x | q_x] · [Q1 | Q2]ᵀ = q_x · Qᵀ, at
// twice the products' cost. Example: 127 = 63 + 64, −127 = −63 − 64, −3 = −1 − 2. (Unsplit,
// oneDNN 2.6 returned wrong int32 sums for random 8-bit codes on an AVX2 and an SSE4.2 CPU:
// tests/int8_gemm_test.cpp, run as such CPUs by tools/isa_check.sh.)
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
  // The same on a chosen product: kReference for oneDNN, else that lmquant kernel (the CPU must
  // have it). The two-argument form takes engine_int8_kernel().
  Int8Linear(const QuantizedMatrix& m, const std::string& what, Int8Isa kernel);
  ~Int8Linear();
  Int8Linear(Int8Linear&&) noexcept;
  Int8Linear& operator=(Int8Linear&&) noexcept;

  // acc [M, n] (row stride n) = q [M, K] · Q[j0 : j0 + n]ᵀ in int32. Safe to call from several
  // threads at once (inside at::parallel_for oneDNN runs on the calling thread).
  void products(const int8_t* q, int64_t M, int64_t j0, int64_t n, int32_t* acc) const;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  const float* step() const { return step_.data_ptr<float>(); }
  // int8 [O, K] ([O, 2K] split) where oneDNN runs them; undefined where lmquant's kernel holds
  // them (packed).
  const torch::Tensor& codes() const { return codes_; }
  const torch::Tensor& steps() const { return step_; }  // float [O]
  size_t bytes() const;
  // Which integer product runs: "avx512_vnni", "avx_vnni", "avx2" (int8_gemm.h) or "onednn",
  // followed by " split" where the codes run split in two (above).
  std::string kernel() const;
  // Whether the codes run split in two (codes beyond ±64 on oneDNN without VNNI).
  bool split() const { return split_; }

 private:
  // The products at the stored depth (cols, or 2 · cols split).
  void depth_products(const int8_t* q, int64_t M, int64_t j0, int64_t n, int32_t* acc) const;

  struct Impl;
  int64_t rows_ = 0, cols_ = 0, depth_ = 0;
  bool split_ = false;
  torch::Tensor codes_;
  torch::Tensor step_;
  std::unique_ptr<Impl> impl_;
};

// Whether oneDNN's int8 products use VNNI here (its effective ISA, ONEDNN_MAX_CPU_ISA applied):
// only then are they exact for codes beyond ±64 (above).
bool onednn_int8_has_vnni();

// z[j] = acc[j] · (a · s[j]) + b[j] for j < n: one row of products back to float (b may be null).
void dequantize_products(const int32_t* acc, int64_t n, float a, const float* s, const float* b,
                         float* z);

// Per-row symmetric int8 quantization of x [N, K] (float): q [N, K] int8 and a [N] float.
std::pair<torch::Tensor, torch::Tensor> quantize_rows_int8(const torch::Tensor& x);
// The same on raw rows (row stride ld >= K), writing q (row stride qld >= K) and a; no threads.
void quantize_rows_int8(const float* x, int64_t N, int64_t K, int64_t ld, int8_t* q, int64_t qld,
                        float* a);

}  // namespace lmquant
