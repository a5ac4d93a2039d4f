// The int8 engine's own integer matrix product, for CPUs where oneDNN's s8 x s8 path is slow
// (AVX2 without VNNI), with a kernel per ISA chosen at run time:
//
//   C[r, o] = Σ_k A[r, k] · W[o, k]        A: activation codes (int8), W: weight codes (int8),
//                                          C: int32, exact.
//
// x86's integer products multiply an UNSIGNED byte by a signed one (vpmaddubsw, vpdpbusd), so the
// activations enter shifted, u = A + 128 ∈ [1, 255], and the shift is taken back with the row sums
// of W:  Σ_k u·W = Σ_k A·W + 128 · Σ_k W[o, k]   ⇒   C = Σ_k u·W − 128 · rowsum(W)[o].
// Example: A row [3, −2], W row [5, 7]: u = [131, 126], Σ u·W = 655 + 882 = 1537, rowsum 12,
// 1537 − 128 · 12 = 1 = 3·5 − 2·7.
//
// Kernels (one baseline x86-64 binary; detect_int8_isa() reads CPUID, LMQUANT_INT8_ISA caps it):
//   avx512_vnni  vpdpbusd on zmm: 64 u8 x s8 products into 16 int32 per instruction, exact
//   avx_vnni     vpdpbusd on ymm (AVX-VNNI, e.g. Alder Lake, Zen 5): 32 per instruction, exact
//   avx2         vpmaddubsw (u8 x s8 pairs summed to int16, SATURATING) then vpmaddwd (x 1, pairs
//                to int32): a pair is at most 2 · 255 · |w| <= 32,767 for |w| <= 64, so the
//                product is exact for every weight code of <= 7 bits (|q| <= 63). Codes beyond
//                ±64 (8 bits) take the signed form instead: no shift, the activation's sign moved
//                onto the weight, |a| · (w · sign a) = a · w (vpabsb, vpsignb), so a pair is at
//                most 2 · 127 · 127 = 32,258 <= 32,767: exact, at two more instructions per step.
//                Example: a = [−127, −127], w = [127, 127]: |a| = [127, 127], w · sign a =
//                [−127, −127], pair = −32,258 (the shifted form's 1·127 + 1·127 is fine here,
//                but a = [127, 127] would give 255 · 127 · 2 = 64,770: saturated).
//                Narrow codes go further: the int16 pair sums of a chain of steps are added in
//                int16 (vpaddw) and widened once, chain = ⌊32,767 / (2 · 255 · max|w|)⌋ (at most
//                kMaxChain): 9 steps for |q| <= 7 (4-bit midtread codes), 4 for |q| <= 15, 1 above
//                32 — one vpmaddwd per chain instead of per step, still exact. Example: |q| <= 7,
//                u = 255 everywhere: 9 steps · 2 · 255 · 7 = 32,130 <= 32,767.
//   reference    the plain loop below (int8_gemm_ref), the definition the kernels are tested
//                against bit for bit (tests/int8_gemm_test.cpp)
// Layout: W is packed once into groups of 16 output rows, k in steps of 4: for group g and step
// t the 64 bytes W[16g + i, 4t + j] (i < 16, j < 4) lie together, so one broadcast 32-bit load
// of 4 activation bytes meets 16 (zmm) or 8 (ymm) outputs × 4 k in one instruction: no horizontal
// sums. K is padded to a multiple of 4 and the rows to a multiple of 16 with zero weights.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmquant {

enum class Int8Isa { kReference, kAvx2, kAvxVnni, kAvx512Vnni };
std::string to_string(Int8Isa isa);
// "reference", "avx2", "avx_vnni" or "avx512_vnni"; throws std::invalid_argument listing them.
Int8Isa parse_int8_isa(const std::string& s);
// What this CPU runs, best first; LMQUANT_INT8_ISA (one of the names above) caps it, e.g. to
// measure the AVX2 kernel on a VNNI machine. Read once.
Int8Isa detect_int8_isa();
// Whether the CPU has AVX-VNNI (the 256-bit VNNI of Alder Lake / Sapphire Rapids / Zen 5).
bool cpu_has_avx_vnni();
// Whether the CPU can run `isa` at all.
bool cpu_has(Int8Isa isa);
// The kernel the int8 engine runs (Int8Linear): lmquant's avx2 kernel where the CPU has AVX2 but
// no VNNI (oneDNN's s8 x s8 path falls back to a slow one there), else oneDNN (kReference here
// means oneDNN: on a Sapphire Rapids-class Xeon oneDNN ran the engine faster than lmquant's VNNI
// kernels, 23.5k vs 21.7k tok/s). LMQUANT_INT8_ISA, when set, decides instead (reference: oneDNN;
// a kernel name: that kernel, capped at what the CPU has).
Int8Isa engine_int8_kernel();

// C [M, n] (row stride ldc) = A [M, K] (row stride lda) · W [n, K]ᵀ, int32: the reference.
void int8_gemm_ref(const int8_t* A, int64_t lda, const int8_t* W, int64_t ldw, int64_t M, int64_t n,
                   int64_t K, int32_t* C, int64_t ldc);

class Int8GemmWeights {
 public:
  Int8GemmWeights() = default;
  // Packs W [rows, K] (row-major) for `isa`; exact for every code in [-127, 127]. Throws
  // std::invalid_argument for a code of -128 or when the CPU lacks `isa`.
  Int8GemmWeights(const int8_t* W, int64_t rows, int64_t K, Int8Isa isa);

  // C [M, n] (row stride ldc) = A [M, K] · W[j0 : j0 + n]ᵀ, exact. j0 must be a multiple of 16.
  // Single-threaded (callers split the columns); safe to call from several threads at once.
  void products(const int8_t* A, int64_t lda, int64_t M, int64_t j0, int64_t n, int32_t* C,
                int64_t ldc) const;

  Int8Isa isa() const { return isa_; }
  // avx2: steps of 4 k added in int16 before widening (1 for the other kernels).
  int64_t chain() const { return chain_; }
  // avx2: whether the codes beyond ±64 run in the signed form.
  bool sign() const { return sign_; }
  static constexpr int64_t kMaxChain = 64;
  int64_t rows() const { return rows_; }
  int64_t cols() const { return K_; }
  size_t bytes() const { return packed_.size() + rowsum_.size() * sizeof(int32_t); }
  // Whether every code lies in [-64, 64], where no u8 x s8 pair of vpmaddubsw (u <= 255) can
  // saturate: 2 · 255 · 64 = 32,640 <= 32,767 (what an int8 product without VNNI needs,
  // int8_linear.h).
  static bool within_pair_bound(const int8_t* W, int64_t count);

 private:
  Int8Isa isa_ = Int8Isa::kReference;
  int64_t rows_ = 0, K_ = 0, Kp_ = 0;  // Kp_: K padded to a multiple of 4
  int64_t chain_ = 1;
  bool sign_ = false;
  std::vector<int8_t> packed_;   // [ceil(rows / 16)][Kp / 4][16][4]
  std::vector<int32_t> rowsum_;  // Σ_k W[o, k], padded rows 0
};

}  // namespace lmquant
