// lmquant's integer matrix-product kernels (src/engine/int8_gemm.h): every kernel this CPU runs
// equals the plain reference bit for bit, at the edges of its exactness bound, on every tail of
// rows, columns and K; the header's example; the avx2 kernel's shifted, chained and signed forms
// at their bounds; Int8Linear exact on every product (oneDNN, each kernel) at every code width.
#include "engine/int8_gemm.h"

#include <random>

#include "engine/int8_linear.h"
#include "test_utils.h"

using namespace lmquant;

namespace {

std::vector<int8_t> random_codes(int64_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(d(g));
  return v;
}

std::vector<Int8Isa> kernels_here() {
  std::vector<Int8Isa> out;
  for (Int8Isa i : {Int8Isa::kAvx2, Int8Isa::kAvxVnni, Int8Isa::kAvx512Vnni})
    if (cpu_has(i)) out.push_back(i);
  return out;
}

}  // namespace

TEST(Int8Gemm, HeaderExample) {
  // A row [3, −2], W row [5, 7]: u = [131, 126], Σ u·W = 1537, rowsum 12, 1537 − 1536 = 1.
  const int8_t A[] = {3, -2}, W[] = {5, 7};
  int32_t c = 0;
  int8_gemm_ref(A, 2, W, 2, 1, 1, 2, &c, 1);
  EXPECT_EQ(c, 1);
  for (Int8Isa isa : kernels_here()) {
    int32_t k = 0;
    Int8GemmWeights(W, 1, 2, isa).products(A, 2, 1, 0, 1, &k, 1);
    EXPECT_EQ(k, 1) << to_string(isa);
  }
}

TEST(Int8Gemm, EveryKernelEqualsTheReferenceOnEveryTail) {
  const auto isas = kernels_here();
  if (isas.empty()) GTEST_SKIP() << "this CPU has no AVX2: only the reference runs";
  std::vector<std::pair<Int8Isa, int>> cases;
  for (Int8Isa isa : isas) {
    cases.push_back({isa, 127});  // every int8 code (avx2: the signed form)
    if (isa == Int8Isa::kAvx2) cases.push_back({isa, 64});  // avx2: the shifted form's bound
  }
  for (auto [isa, wmax] : cases) {
    uint32_t seed = 1;
    for (int64_t M : {1, 5, 6, 7, 13})
      for (int64_t K : {1, 3, 4, 5, 64, 201})
        for (int64_t rows : {1, 15, 16, 17, 70}) {
          auto W = random_codes(rows * K, -wmax, wmax, seed++);
          auto A = random_codes(M * K, -127, 127, seed++);
          // The bounds themselves: the largest products the kernels must carry exactly.
          W[0] = static_cast<int8_t>(wmax);
          W[W.size() - 1] = static_cast<int8_t>(-wmax);
          A[0] = 127;
          A[A.size() - 1] = -127;
          if (M > 2) std::fill(A.begin() + K, A.begin() + 2 * K, int8_t{0});  // an all-zero row
          const Int8GemmWeights packed(W.data(), rows, K, isa);
          for (int64_t j0 : {int64_t{0}, int64_t{16}}) {
            if (j0 >= rows) continue;
            const int64_t n = rows - j0;
            std::vector<int32_t> want(static_cast<size_t>(M * n)), got(want.size(), -7);
            int8_gemm_ref(A.data(), K, W.data() + j0 * K, K, M, n, K, want.data(), n);
            packed.products(A.data(), K, M, j0, n, got.data(), n);
            ASSERT_EQ(got, want) << to_string(isa) << " M " << M << " K " << K << " rows " << rows
                                 << " j0 " << j0;
          }
        }
  }
}

TEST(Int8Gemm, Avx2ChainsOfNarrowCodesStayExactAtTheirBound) {
  // The avx2 kernel adds int16 pair sums over ⌊32,767 / (2 · 255 · max|w|)⌋ steps before
  // widening. Worst cases: every activation at u = 255 (A = 127) against rows of +max|w| and
  // −max|w|, K long enough for several chains and a partial last one; and random codes.
  if (!cpu_has(Int8Isa::kAvx2)) GTEST_SKIP() << "this CPU has no AVX2";
  // 65..127: the signed form (|a| · w · sign a), a pair at most 2 · 127 · 127 = 32,258; the
  // rows of A at ±127 are its worst case too.
  for (int wmax : {1, 7, 15, 16, 32, 33, 64, 65, 127}) {
    const int64_t K = 4 * 37 + 3, rows = 18, M = 5;
    std::vector<int8_t> W = random_codes(rows * K, -wmax, wmax, static_cast<uint32_t>(wmax));
    std::fill(W.begin(), W.begin() + K, static_cast<int8_t>(wmax));
    std::fill(W.begin() + K, W.begin() + 2 * K, static_cast<int8_t>(-wmax));
    std::vector<int8_t> A = random_codes(M * K, -127, 127, 100u + static_cast<uint32_t>(wmax));
    std::fill(A.begin(), A.begin() + K, int8_t{127});
    std::fill(A.begin() + K, A.begin() + 2 * K, int8_t{-127});
    const Int8GemmWeights packed(W.data(), rows, K, Int8Isa::kAvx2);
    EXPECT_EQ(packed.sign(), wmax > 64);
    EXPECT_EQ(packed.chain(), std::max<int64_t>(1, std::min<int64_t>(Int8GemmWeights::kMaxChain,
                                                                     32767 / (2 * 255 * wmax))))
        << "max|w| " << wmax;
    std::vector<int32_t> want(static_cast<size_t>(M * rows)), got(want.size(), -7);
    int8_gemm_ref(A.data(), K, W.data(), K, M, rows, K, want.data(), rows);
    packed.products(A.data(), K, M, 0, rows, got.data(), rows);
    EXPECT_EQ(got, want) << "max|w| " << wmax << " chain " << packed.chain();
  }
  EXPECT_EQ(Int8GemmWeights(std::vector<int8_t>(8, 7).data(), 2, 4, Int8Isa::kAvx2).chain(), 9);
  EXPECT_EQ(Int8GemmWeights(std::vector<int8_t>(8, 0).data(), 2, 4, Int8Isa::kAvx2).chain(),
            Int8GemmWeights::kMaxChain);
}

TEST(Int8Gemm, SaturationBoundAndRefusals) {
  // Two products of 255 · 65 overflow int16 in vpmaddubsw: such codes are beyond the pair bound
  // (the avx2 kernel runs them in its signed form, oneDNN without VNNI split in two).
  EXPECT_FALSE(Int8GemmWeights::within_pair_bound(std::vector<int8_t>{65, 1, 2, 3}.data(), 4));
  EXPECT_FALSE(Int8GemmWeights::within_pair_bound(std::vector<int8_t>{0, -65}.data(), 2));
  EXPECT_TRUE(Int8GemmWeights::within_pair_bound(std::vector<int8_t>{64, -64, 0}.data(), 3));
  // The signed form's example (int8_gemm.h): a = [127, 127] against w = [127, 127] would give
  // 2 · 255 · 127 = 64,770 shifted; signed, 2 · 127 · 127 = 32,258, exact.
  if (cpu_has(Int8Isa::kAvx2)) {
    const int8_t A[] = {127, 127, -127, -127}, W[] = {127, 127};
    int32_t c[2] = {0, 0};
    const Int8GemmWeights p(W, 1, 2, Int8Isa::kAvx2);
    EXPECT_TRUE(p.sign());
    p.products(A, 2, 2, 0, 1, c, 1);
    EXPECT_EQ(c[0], 32258);
    EXPECT_EQ(c[1], -32258);
  }
  for (Int8Isa isa : kernels_here())
    EXPECT_THROW_MESSAGE(Int8GemmWeights(std::vector<int8_t>{1, -128}.data(), 1, 2, isa),
                         std::invalid_argument, "-128");
  if (!kernels_here().empty()) {
    const std::vector<int8_t> W = {1, 2, 3, 4};
    const Int8GemmWeights p(W.data(), 1, 4, kernels_here().back());
    int32_t c = 0;
    const int8_t A[] = {1, 1, 1, 1};
    EXPECT_THROW_MESSAGE(p.products(A, 4, 1, 3, 1, &c, 1), std::invalid_argument, "multiple of 16");
  }
  EXPECT_EQ(parse_int8_isa("avx_vnni"), Int8Isa::kAvxVnni);
  EXPECT_THROW_MESSAGE(parse_int8_isa("sse"), std::invalid_argument,
                       "valid values: reference, avx2, avx_vnni, avx512_vnni");
  EXPECT_TRUE(cpu_has(detect_int8_isa()));
}

TEST(Int8Gemm, Int8LinearIsExactOnEveryProductAndCodeWidth) {
  // Int8Linear on every product this CPU runs (oneDNN and each lmquant kernel) equals the
  // reference for codes within ±63, at the bound ±64 and at 8 bits (±127), with activations at
  // ±127 (u = 255, the worst case for vpmaddubsw's int16 pairs) and random ones, from any first
  // column. On oneDNN without VNNI the 8-bit codes run split in two (int8_linear.h); unsplit, its
  // AVX2 and SSE4.1 paths got these sums wrong (tools/isa_check.sh runs this as such CPUs).
  std::vector<Int8Isa> products = {Int8Isa::kReference};
  for (Int8Isa i : kernels_here()) products.push_back(i);
  for (Int8Isa isa : products)
    for (int bound : {63, 64, 127}) {
      const int64_t O = 40, K = 37;
      QuantizedMatrix m;
      m.name = "t";
      auto W = random_codes(O * K, -bound, bound, 11);
      for (int64_t k = 0; k < K; ++k) W[static_cast<size_t>(k)] = bound;       // row 0: all +bound
      for (int64_t k = 0; k < K; ++k) W[static_cast<size_t>(K + k)] = -bound;  // row 1: all -bound
      m.codes = torch::from_blob(W.data(), {O, K}, torch::kChar).to(torch::kShort);
      m.step = torch::full({O, 1}, 0.5f);
      m.group_size = K;
      const Int8Linear lin(m, "test", isa);
      // Only oneDNN without VNNI splits; lmquant's kernels are exact for every code.
      const bool split = isa == Int8Isa::kReference && !onednn_int8_has_vnni() && bound > 64;
      EXPECT_EQ(lin.split(), split) << lin.kernel() << " bound " << bound;
      auto A = random_codes(4 * K, -127, 127, 12);
      for (int64_t k = 0; k < K; ++k) {
        A[static_cast<size_t>(k)] = 127;                                          // row 0: u = 255
        A[static_cast<size_t>(K + k)] = static_cast<int8_t>(k % 2 ? 127 : -127);  // row 1
      }
      for (int64_t j0 : {0, 5, 16, 21}) {
        const int64_t n = O - j0;
        std::vector<int32_t> want(static_cast<size_t>(4 * n)), got(want.size());
        int8_gemm_ref(A.data(), K, W.data() + j0 * K, K, 4, n, K, want.data(), n);
        lin.products(A.data(), 4, j0, n, got.data());
        EXPECT_EQ(got, want) << lin.kernel() << " bound " << bound << " j0 " << j0;
      }
    }
}
