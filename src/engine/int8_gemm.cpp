#include "engine/int8_gemm.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace lmquant {

std::string to_string(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::kAvx2:
      return "avx2";
    case Int8Isa::kAvxVnni:
      return "avx_vnni";
    case Int8Isa::kAvx512Vnni:
      return "avx512_vnni";
    default:
      return "reference";
  }
}

Int8Isa parse_int8_isa(const std::string& s) {
  for (Int8Isa i : {Int8Isa::kReference, Int8Isa::kAvx2, Int8Isa::kAvxVnni, Int8Isa::kAvx512Vnni})
    if (to_string(i) == s) return i;
  throw std::invalid_argument("unknown int8 ISA '" + s +
                              "'; valid values: reference, avx2, avx_vnni, avx512_vnni");
}

bool cpu_has_avx_vnni() {
  // CPUID leaf 7, subleaf 1, EAX bit 4 (AVX-VNNI). Read directly: GCC knows
  // __builtin_cpu_supports("avxvnni"), clang 14 (the fuzz build's) does not.
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)) != 0;
}

bool cpu_has(Int8Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Int8Isa::kAvx2:
      return __builtin_cpu_supports("avx2");
    case Int8Isa::kAvxVnni:
      return __builtin_cpu_supports("avx2") && cpu_has_avx_vnni();
    case Int8Isa::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vnni");
    default:
      return true;
  }
}

Int8Isa detect_int8_isa() {
  static const Int8Isa isa = [] {
    Int8Isa best = Int8Isa::kReference;
    for (Int8Isa i : {Int8Isa::kAvx2, Int8Isa::kAvxVnni, Int8Isa::kAvx512Vnni})
      if (cpu_has(i)) best = i;
    if (const char* cap = std::getenv("LMQUANT_INT8_ISA"); cap && *cap) {
      const Int8Isa c = parse_int8_isa(cap);
      // A cap, never an upgrade: avx_vnni and avx512_vnni are not ordered on every CPU.
      if (c == Int8Isa::kReference || (cpu_has(c) && static_cast<int>(c) <= static_cast<int>(best)))
        best = c;
      else if (!cpu_has(c))
        best = cpu_has(Int8Isa::kAvx2) ? Int8Isa::kAvx2 : Int8Isa::kReference;
    }
    return best;
  }();
  return isa;
}

Int8Isa engine_int8_kernel() {
  const char* cap = std::getenv("LMQUANT_INT8_ISA");
  if (cap && *cap) return detect_int8_isa();
  return detect_int8_isa() == Int8Isa::kAvx2 ? Int8Isa::kAvx2 : Int8Isa::kReference;
}

void int8_gemm_ref(const int8_t* A, int64_t lda, const int8_t* W, int64_t ldw, int64_t M, int64_t n,
                   int64_t K, int32_t* C, int64_t ldc) {
  for (int64_t r = 0; r < M; ++r)
    for (int64_t o = 0; o < n; ++o) {
      int32_t s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += static_cast<int32_t>(A[r * lda + k]) * static_cast<int32_t>(W[o * ldw + k]);
      C[r * ldc + o] = s;
    }
}

namespace {

constexpr int64_t kGroup = 16;  // output rows per packed group
// Rows per tile of the chained avx2 kernel: on a Sapphire Rapids-class Xeon (the kernel run
// natively) the decoder's 350 x 200 x 33,278 on 4-bit codes ran at 170 / 191 / 162 GMAC/s with
// 2 / 3 / 4 rows, against 158 widening every step.
constexpr int kChainRows = 3;

// Everything a kernel needs for one call: U [M, Kp] (activations + 128), the packed groups
// from the first one asked for, the bias −128·rowsum per output, C and which columns are real.
struct Call {
  const uint8_t* U;
  int64_t M, Kp;
  const int8_t* Wp;     // group 0 of this call
  const int32_t* bias;  // −128 · rowsum, per output of this call
  int64_t n;            // real columns
  int32_t* C;
  int64_t ldc;
  int64_t chain;  // avx2: steps of 4 k summed in int16 before widening (Int8GemmWeights::chain)
};

// Stores the 16 int32 of one group's row r (from a scratch copy) into C, only the real columns.
inline void store_partial(const int32_t* tile, int64_t cols, int32_t* c) {
  std::memcpy(c, tile, static_cast<size_t>(cols) * sizeof(int32_t));
}

// ---- AVX-512 VNNI: MR rows x NG groups of 16 outputs in zmm accumulators ------------------
template <int MR, int NG>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline void tile512(const Call& c,
                                                                           int64_t r0, int64_t g0) {
  __m512i acc[MR][NG];
  for (int j = 0; j < NG; ++j) {
    const __m512i b = _mm512_loadu_si512(c.bias + (g0 + j) * kGroup);
    for (int i = 0; i < MR; ++i) acc[i][j] = b;
  }
  const int64_t steps = c.Kp / 4;
  const int8_t* w = c.Wp + g0 * steps * 64;
  for (int64_t t = 0; t < steps; ++t) {
    __m512i wv[NG];
#pragma GCC unroll 8
    for (int j = 0; j < NG; ++j) wv[j] = _mm512_loadu_si512(w + (j * steps + t) * 64);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int32_t a4;
      std::memcpy(&a4, c.U + (r0 + i) * c.Kp + 4 * t, 4);
      const __m512i av = _mm512_set1_epi32(a4);
#pragma GCC unroll 8
      for (int j = 0; j < NG; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, wv[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NG; ++j) {
      const int64_t col = (g0 + j) * kGroup;
      int32_t* dst = c.C + (r0 + i) * c.ldc + col;
      if (col + kGroup <= c.n) {
        _mm512_storeu_si512(dst, acc[i][j]);
      } else {
        alignas(64) int32_t tmp[kGroup];
        _mm512_store_si512(tmp, acc[i][j]);
        store_partial(tmp, c.n - col, dst);
      }
    }
}

template <int MR>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void rows512(const Call& c, int64_t r0,
                                                                    int64_t groups) {
  constexpr int NG = 4;
  int64_t g = 0;
  for (; g + NG <= groups; g += NG) tile512<MR, NG>(c, r0, g);
  for (; g < groups; ++g) tile512<MR, 1>(c, r0, g);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void kernel512(const Call& c,
                                                                      int64_t groups) {
  constexpr int MR = 6;
  int64_t r = 0;
  for (; r + MR <= c.M; r += MR) rows512<MR>(c, r, groups);
  for (; r < c.M; ++r) rows512<1>(c, r, groups);
}

// ---- AVX-VNNI (vpdpbusd on ymm) and AVX2 (vpmaddubsw + vpmaddwd): MR rows x one group ------
// (two ymm of 8 outputs). Two functions, not one template: the AVX2 one must not carry the
// avxvnni target, since it runs where AVX-VNNI is absent.
template <int MR>
__attribute__((target("avx2,avxvnni"))) inline void tile_avx_vnni(const Call& c, int64_t r0,
                                                                  int64_t g) {
  __m256i acc[MR][2];
  const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.bias + g * kGroup));
  const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.bias + g * kGroup + 8));
  for (int i = 0; i < MR; ++i) acc[i][0] = b0, acc[i][1] = b1;
  const int64_t steps = c.Kp / 4;
  const int8_t* w = c.Wp + g * steps * 64;
  for (int64_t t = 0; t < steps; ++t) {
    const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * 64));
    const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * 64 + 32));
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      int32_t a4;
      std::memcpy(&a4, c.U + (r0 + i) * c.Kp + 4 * t, 4);
      const __m256i av = _mm256_set1_epi32(a4);
      acc[i][0] = _mm256_dpbusd_avx_epi32(acc[i][0], av, w0);
      acc[i][1] = _mm256_dpbusd_avx_epi32(acc[i][1], av, w1);
    }
  }
  const int64_t col = g * kGroup;
  for (int i = 0; i < MR; ++i) {
    int32_t* dst = c.C + (r0 + i) * c.ldc + col;
    if (col + kGroup <= c.n) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), acc[i][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8), acc[i][1]);
    } else {
      alignas(32) int32_t tmp[kGroup];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[i][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), acc[i][1]);
      store_partial(tmp, c.n - col, dst);
    }
  }
}

// The three forms of the AVX2 tile (Int8GemmWeights::Avx2Form): kPairs widens every step's
// vpmaddubsw pairs with vpmaddwd; kChained adds the int16 pair sums of a chain of c.chain steps in
// int16 (exact: the chain is as long as |Σ| <= chain · 2 · 255 · max|w| <= 32,767 allows) and
// widens once; kSigned (codes beyond ±64) multiplies |a| by w · sign(a) (vpabsb, vpsignb): the
// same product, a pair at most 2 · 127 · 127 = 32,258, widened every step, no shift, no bias.
// The chained form holds twice the accumulators, so it takes fewer rows per tile (AVX2 has 16 ymm
// registers).
enum class Avx2Form { kPairs, kChained, kSigned };

// The 4 activation bytes at p in every 32-bit lane.
__attribute__((target("avx2"))) inline __m256i broadcast4(const uint8_t* p) {
  int32_t a4;
  std::memcpy(&a4, p, 4);
  return _mm256_set1_epi32(a4);
}

template <int MR, Avx2Form kForm>
__attribute__((target("avx2"))) inline void tile256_avx2(const Call& c, int64_t r0, int64_t g) {
  __m256i acc[MR][2];
  const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.bias + g * kGroup));
  const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.bias + g * kGroup + 8));
  for (int i = 0; i < MR; ++i) acc[i][0] = b0, acc[i][1] = b1;
  const int64_t steps = c.Kp / 4;
  const int8_t* w = c.Wp + g * steps * 64;
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (kForm == Avx2Form::kChained) {
    for (int64_t t0 = 0; t0 < steps; t0 += c.chain) {
      const int64_t t1 = std::min(steps, t0 + c.chain);
      __m256i s16[MR][2];
      for (int i = 0; i < MR; ++i) s16[i][0] = s16[i][1] = _mm256_setzero_si256();
      for (int64_t t = t0; t < t1; ++t) {
        const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * 64));
        const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * 64 + 32));
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
          const __m256i av = broadcast4(c.U + (r0 + i) * c.Kp + 4 * t);
          s16[i][0] = _mm256_add_epi16(s16[i][0], _mm256_maddubs_epi16(av, w0));
          s16[i][1] = _mm256_add_epi16(s16[i][1], _mm256_maddubs_epi16(av, w1));
        }
      }
      for (int i = 0; i < MR; ++i) {
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(s16[i][0], ones));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(s16[i][1], ones));
      }
    }
  } else {
    for (int64_t t = 0; t < steps; ++t) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * 64));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * 64 + 32));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256i av = broadcast4(c.U + (r0 + i) * c.Kp + 4 * t);
        __m256i p0, p1;
        if constexpr (kForm == Avx2Form::kSigned) {  // U holds a itself (s8)
          const __m256i mag = _mm256_abs_epi8(av);
          p0 = _mm256_maddubs_epi16(mag, _mm256_sign_epi8(w0, av));
          p1 = _mm256_maddubs_epi16(mag, _mm256_sign_epi8(w1, av));
        } else {
          p0 = _mm256_maddubs_epi16(av, w0);
          p1 = _mm256_maddubs_epi16(av, w1);
        }
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(p0, ones));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(p1, ones));
      }
    }
  }
  const int64_t col = g * kGroup;
  for (int i = 0; i < MR; ++i) {
    int32_t* dst = c.C + (r0 + i) * c.ldc + col;
    if (col + kGroup <= c.n) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), acc[i][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8), acc[i][1]);
    } else {
      alignas(32) int32_t tmp[kGroup];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc[i][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), acc[i][1]);
      store_partial(tmp, c.n - col, dst);
    }
  }
}

__attribute__((target("avx2,avxvnni"))) void kernel_avx_vnni(const Call& c, int64_t groups) {
  constexpr int MR = 6;
  for (int64_t g = 0; g < groups; ++g) {
    int64_t r = 0;
    for (; r + MR <= c.M; r += MR) tile_avx_vnni<MR>(c, r, g);
    for (; r < c.M; ++r) tile_avx_vnni<1>(c, r, g);
  }
}

template <int MR, Avx2Form kForm>
__attribute__((target("avx2"))) void tiles_avx2(const Call& c, int64_t groups) {
  for (int64_t g = 0; g < groups; ++g) {
    int64_t r = 0;
    for (; r + MR <= c.M; r += MR) tile256_avx2<MR, kForm>(c, r, g);
    for (; r < c.M; ++r) tile256_avx2<1, kForm>(c, r, g);
  }
}

__attribute__((target("avx2"))) void kernel_avx2(const Call& c, int64_t groups, bool sign) {
  if (sign)
    tiles_avx2<4, Avx2Form::kSigned>(c, groups);
  else if (c.chain > 1)
    tiles_avx2<kChainRows, Avx2Form::kChained>(c, groups);
  else
    tiles_avx2<4, Avx2Form::kPairs>(c, groups);
}

}  // namespace

bool Int8GemmWeights::within_pair_bound(const int8_t* W, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    if (W[i] < -64 || W[i] > 64) return false;
  return true;
}

Int8GemmWeights::Int8GemmWeights(const int8_t* W, int64_t rows, int64_t K, Int8Isa isa)
    : isa_(isa), rows_(rows), K_(K), Kp_((K + 3) / 4 * 4) {
  if (!cpu_has(isa))
    throw std::invalid_argument("int8 kernel " + to_string(isa) + ": this CPU lacks it");
  int wmax = 0;
  for (int64_t i = 0; i < rows * K; ++i) {
    if (W[i] == -128)
      throw std::invalid_argument("int8 kernel " + to_string(isa) +
                                  ": weight code -128 (codes lie in [-127, 127])");
    wmax = std::max(wmax, std::abs(static_cast<int>(W[i])));
  }
  const int64_t groups = (rows + kGroup - 1) / kGroup, steps = Kp_ / 4;
  if (isa == Int8Isa::kAvx2) {
    sign_ = wmax > 64;
    chain_ = wmax == 0
                 ? kMaxChain
                 : std::max<int64_t>(1, std::min<int64_t>(kMaxChain, 32767 / (2 * 255 * wmax)));
  }
  packed_.assign(static_cast<size_t>(groups * steps * 64), 0);
  rowsum_.assign(static_cast<size_t>(groups * kGroup), 0);
  for (int64_t o = 0; o < rows; ++o) {
    const int64_t g = o / kGroup, i = o % kGroup;
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int8_t v = W[o * K + k];
      packed_[static_cast<size_t>(((g * steps + k / 4) * kGroup + i) * 4 + k % 4)] = v;
      s += v;
    }
    rowsum_[static_cast<size_t>(o)] = s;
  }
}

void Int8GemmWeights::products(const int8_t* A, int64_t lda, int64_t M, int64_t j0, int64_t n,
                               int32_t* C, int64_t ldc) const {
  if (j0 % kGroup != 0 || j0 < 0 || n < 0 || j0 + n > rows_)
    throw std::invalid_argument("Int8GemmWeights::products: columns [" + std::to_string(j0) + ", " +
                                std::to_string(j0 + n) + ") of " + std::to_string(rows_) +
                                " (the first must be a multiple of 16)");
  if (M == 0 || n == 0) return;
  const int64_t steps = Kp_ / 4, groups = (n + kGroup - 1) / kGroup;
  // Activations + 128 (two's complement: a ^ 0x80), K padded with a = 0 (their weights are 0);
  // the signed form takes a itself and no bias.
  thread_local std::vector<uint8_t> u;
  thread_local std::vector<int32_t> bias;
  const uint8_t shift = sign_ ? 0u : 0x80u;
  u.resize(static_cast<size_t>(M * Kp_));
  for (int64_t r = 0; r < M; ++r) {
    uint8_t* ur = u.data() + r * Kp_;
    const int8_t* ar = A + r * lda;
    for (int64_t k = 0; k < K_; ++k) ur[k] = static_cast<uint8_t>(ar[k]) ^ shift;
    for (int64_t k = K_; k < Kp_; ++k) ur[k] = shift;
  }
  bias.resize(static_cast<size_t>(groups * kGroup));
  for (int64_t o = 0; o < groups * kGroup; ++o)
    bias[static_cast<size_t>(o)] = sign_ ? 0 : -128 * rowsum_[static_cast<size_t>(j0 + o)];
  const Call c{u.data(), M,   Kp_,   packed_.data() + (j0 / kGroup) * steps * 64, bias.data(), n,
               C,        ldc, chain_};
  switch (isa_) {
    case Int8Isa::kAvx512Vnni:
      kernel512(c, groups);
      break;
    case Int8Isa::kAvxVnni:
      kernel_avx_vnni(c, groups);
      break;
    case Int8Isa::kAvx2:
      kernel_avx2(c, groups, sign_);
      break;
    default: {
      // The reference on the packed layout's inputs (used when no kernel applies).
      for (int64_t r = 0; r < M; ++r)
        for (int64_t o = 0; o < n; ++o) {
          const int64_t g = o / kGroup, i = o % kGroup;
          int32_t s = bias[static_cast<size_t>(o)];
          for (int64_t k = 0; k < Kp_; ++k)
            s += static_cast<int32_t>(u[static_cast<size_t>(r * Kp_ + k)]) *
                 packed_[static_cast<size_t>(
                     (((j0 / kGroup + g) * steps + k / 4) * kGroup + i) * 4 + k % 4)];
          C[r * ldc + o] = s;
        }
    }
  }
}

}  // namespace lmquant
