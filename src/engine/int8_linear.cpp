#include "engine/int8_linear.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <vector>

#include "util/fast_math.h"

namespace lmquant {

struct Int8Linear::Impl {
  Int8GemmWeights own;  // lmquant's kernel (int8_gemm.h), when one applies
  bool use_own = false;
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  // One matmul per (rows, columns): [M, K] s8 x [K, n] s8 -> [M, n] s32, the weights read in
  // place from the codes ([n, K] row-major = [K, n] in "ba" layout).
  // Each primitive uses a scratchpad the caller passes (user mode): the decoder's vocabulary
  // blocks execute the same primitive from several threads at once, and the library's own
  // scratchpad is not for concurrent use (it corrupted the products when the blocks first ran in
  // parallel).
  struct Prim {
    dnnl::matmul matmul;
    dnnl::memory::desc scratch;
  };
  std::map<std::pair<int64_t, int64_t>, Prim> prims;
  std::mutex mu;

  Prim prim(int64_t M, int64_t K, int64_t n) {
    std::lock_guard<std::mutex> lock(mu);
    auto key = std::make_pair(M, n);
    auto it = prims.find(key);
    if (it != prims.end()) return it->second;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc src({M, K}, dt::s8, tag::ab), wei({K, n}, dt::s8, tag::ba),
        dst({M, n}, dt::s32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), attr, eng);
    return prims.emplace(key, Prim{dnnl::matmul(pd), pd.scratchpad_desc()}).first->second;
  }
};

Int8Linear::Int8Linear() = default;
Int8Linear::~Int8Linear() = default;
Int8Linear::Int8Linear(Int8Linear&&) noexcept = default;
Int8Linear& Int8Linear::operator=(Int8Linear&&) noexcept = default;

Int8Linear::Int8Linear(const QuantizedMatrix& m, const std::string& what)
    : Int8Linear(m, what, engine_int8_kernel()) {}

Int8Linear::Int8Linear(const QuantizedMatrix& m, const std::string& what, Int8Isa isa)
    : impl_(std::make_unique<Impl>()) {
  if (!m.codes.defined() || m.codes.dim() != 2)
    throw std::invalid_argument(what + ": " + m.name + " has no codes");
  const int64_t O = m.codes.size(0);
  if (m.step.numel() != O && m.step.numel() != 1)
    throw std::invalid_argument(what + ": " + m.name +
                                " has group scales; the int8 engine needs one step per row "
                                "(--granularity row or tensor)");
  const auto c = m.codes.to(torch::kCPU);  // int8 or int16: no wider temporary
  if (c.numel() > 0 && (c.min().item<int>() < -127 || c.max().item<int>() > 127))
    throw std::invalid_argument(what + ": " + m.name +
                                " has codes outside [-127, 127] (over 8 bits); quantize it at "
                                "8 bits or fewer");
  codes_ = c.to(torch::kChar).contiguous();
  rows_ = O;
  cols_ = codes_.size(1);
  depth_ = cols_;
  step_ = m.step.to(torch::kCPU, torch::kFloat).reshape({-1}).expand({O}).contiguous();
  // lmquant's kernel `isa` (the engine's: AVX2 without VNNI; exact for every code), or oneDNN for
  // kReference, which without VNNI saturates beyond |w| = 64: there such a matrix runs split.
  const bool own = isa != Int8Isa::kReference;
  if (!own && !onednn_int8_has_vnni() &&
      !Int8GemmWeights::within_pair_bound(codes_.data_ptr<int8_t>(), codes_.numel())) {
    split_ = true;
    depth_ = 2 * cols_;
    const auto wide = codes_.to(torch::kShort);
    const auto half = torch::div(wide, 2, "trunc");  // W1 = trunc(W / 2)
    codes_ = torch::cat({half, wide - half}, 1).to(torch::kChar).contiguous();
  }
  if (own) {
    impl_->own = Int8GemmWeights(codes_.data_ptr<int8_t>(), O, depth_, isa);
    impl_->use_own = true;
    codes_ = torch::Tensor();  // the packed copy is all the kernel reads
  }
}

bool onednn_int8_has_vnni() {
  const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
  // avx512_core_vnni (0x67) and above (bf16 0xe7, amx 0x3e7) carry bit 0x40; avx2_vnni is 0x407.
  return (isa & 0x40u) != 0 || (isa & 0x400u) != 0;
}

size_t Int8Linear::bytes() const {
  // The codes oneDNN reads, or the kernel's packed copy.
  return (impl_->use_own ? impl_->own.bytes() : static_cast<size_t>(codes_.numel())) +
         step_.numel() * sizeof(float);
}

std::string Int8Linear::kernel() const {
  return (impl_->use_own ? to_string(impl_->own.isa()) : std::string("onednn")) +
         (split_ ? " split" : "");
}

void Int8Linear::products(const int8_t* q, int64_t M, int64_t j0, int64_t n, int32_t* acc) const {
  TORCH_CHECK(j0 >= 0 && n >= 1 && j0 + n <= rows(), "Int8Linear: columns out of range");
  if (M == 0) return;
  if (!split_) return depth_products(q, M, j0, n, acc);
  // [q | q] against [W1 | W2]: the same sum, every pair within the bound.
  thread_local std::vector<int8_t> twice;
  twice.resize(static_cast<size_t>(M * depth_));
  for (int64_t r = 0; r < M; ++r) {
    std::copy_n(q + r * cols_, cols_, twice.data() + r * depth_);
    std::copy_n(q + r * cols_, cols_, twice.data() + r * depth_ + cols_);
  }
  depth_products(twice.data(), M, j0, n, acc);
}

void Int8Linear::depth_products(const int8_t* q, int64_t M, int64_t j0, int64_t n,
                                int32_t* acc) const {
  const int64_t K = depth_;
  if (impl_->use_own && j0 % 16 != 0) {  // the kernel starts at a group of 16: compute from there
    const int64_t off = j0 % 16;
    thread_local std::vector<int32_t> wide;
    wide.resize(static_cast<size_t>(M * (n + off)));
    depth_products(q, M, j0 - off, n + off, wide.data());
    for (int64_t r = 0; r < M; ++r) std::copy_n(wide.data() + r * (n + off) + off, n, acc + r * n);
    return;
  }
  if (impl_->use_own) {
    // Outside a parallel region (the LSTM's products) the columns are split over the threads
    // in groups of 16; inside one (the decoder's vocabulary blocks) this thread does them all.
    if (at::in_parallel_region() || M * n * K < (int64_t{1} << 22)) {
      impl_->own.products(q, K, M, j0, n, acc, n);
    } else {
      const int64_t groups = (n + 15) / 16;
      at::parallel_for(0, groups, 1, [&](int64_t b, int64_t e) {
        const int64_t c0 = b * 16, c1 = std::min(n, e * 16);
        impl_->own.products(q, K, M, j0 + c0, c1 - c0, acc + c0, n);
      });
    }
    return;
  }
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto& eng = impl_->eng;
  auto prim = impl_->prim(M, K, n);
  dnnl::memory src({{M, K}, dt::s8, tag::ab}, eng, const_cast<int8_t*>(q));
  dnnl::memory wei({{K, n}, dt::s8, tag::ba}, eng,
                   const_cast<int8_t*>(codes_.data_ptr<int8_t>() + j0 * K));
  dnnl::memory dst({{M, n}, dt::s32, tag::ab}, eng, acc);
  thread_local std::vector<uint8_t> scratch_buf;
  scratch_buf.resize(std::max<size_t>(1, prim.scratch.get_size()));
  dnnl::memory scratch(prim.scratch, eng, scratch_buf.data());
  dnnl::stream strm(eng);
  prim.matmul.execute(strm, {{DNNL_ARG_SRC, src},
                             {DNNL_ARG_WEIGHTS, wei},
                             {DNNL_ARG_DST, dst},
                             {DNNL_ARG_SCRATCHPAD, scratch}});
  strm.wait();
}

namespace {

// 16 running maxima, so the compiler vectorises it (a single running max is a reduction it may
// not reorder; the maximum is the same in any order).
LMQ_INLINE float abs_max_body(const float* x, int64_t K) {
  float acc[16] = {0};
  int64_t j = 0;
  for (; j + 16 <= K; j += 16)
    for (int64_t u = 0; u < 16; ++u) {
      const float v = x[j + u] < 0 ? -x[j + u] : x[j + u];
      acc[u] = v > acc[u] ? v : acc[u];
    }
  float mx = 0;
  for (; j < K; ++j) {
    const float v = x[j] < 0 ? -x[j] : x[j];
    mx = v > mx ? v : mx;
  }
  for (float a : acc) mx = a > mx ? a : mx;
  return mx;
}
LMQ_DISPATCH(float, abs_max, (const float* x, int64_t K), (x, K), abs_max_body)

// q = round-half-even(x · inv) clamped to [-127, 127] (|x · inv| <= 127 already, up to rounding).
LMQ_INLINE void to_codes_body(const float* x, int64_t K, float inv, int8_t* q) {
  for (int64_t j = 0; j < K; ++j) {
    float v = x[j] * inv;
    v = (v + 12582912.0f) - 12582912.0f;  // round half to even, |v| < 2^22
    v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
    q[j] = static_cast<int8_t>(static_cast<int32_t>(v));
  }
}
LMQ_DISPATCH(void, to_codes, (const float* x, int64_t K, float inv, int8_t* q), (x, K, inv, q),
             to_codes_body)

}  // namespace

LMQ_INLINE void dequantize_products_body(const int32_t* acc, int64_t n, float a, const float* s,
                                         const float* b, float* z) {
  if (b) {
    for (int64_t j = 0; j < n; ++j) z[j] = static_cast<float>(acc[j]) * (a * s[j]) + b[j];
  } else {
    for (int64_t j = 0; j < n; ++j) z[j] = static_cast<float>(acc[j]) * (a * s[j]);
  }
}
LMQ_DISPATCH(void, dequantize_products,
             (const int32_t* acc, int64_t n, float a, const float* s, const float* b, float* z),
             (acc, n, a, s, b, z), dequantize_products_body)

void quantize_rows_int8(const float* x, int64_t N, int64_t K, int64_t ld, int8_t* q, int64_t qld,
                        float* a) {
  for (int64_t r = 0; r < N; ++r) {
    const float* row = x + r * ld;
    const float mx = abs_max(row, K);
    a[r] = mx / 127.0f;
    to_codes(row, K, mx > 0 ? 127.0f / mx : 0.0f, q + r * qld);
  }
}

std::pair<torch::Tensor, torch::Tensor> quantize_rows_int8(const torch::Tensor& x_in) {
  const auto x = x_in.to(torch::kCPU, torch::kFloat).contiguous();
  TORCH_CHECK(x.dim() == 2, "quantize_rows_int8: x [N, K] expected");
  const int64_t N = x.size(0), K = x.size(1);
  auto q = torch::empty({N, K}, torch::kChar);
  auto a = torch::empty({N}, torch::kFloat);
  const float* xp = x.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* ap = a.data_ptr<float>();
  at::parallel_for(0, N, 16, [&](int64_t b, int64_t e) {
    quantize_rows_int8(xp + b * K, e - b, K, K, qp + b * K, K, ap + b);
  });
  return {q, a};
}

}  // namespace lmquant
