#include "quant/rotation.h"

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

namespace lmquant {

uint64_t rotation_seed(uint64_t seed, int64_t n) {
  // splitmix64 of (seed, n): distinct widths get unrelated streams.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(n) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

torch::Tensor random_rotation(int64_t n, uint64_t seed) {
  if (n < 1) throw std::invalid_argument("rotation: width must be >= 1, got " + std::to_string(n));
  // std::mt19937_64 is specified bit for bit by the standard; the distributions are not, so the
  // uniforms and Box–Muller are written out: u in (0, 1] from the top 53 bits.
  std::mt19937_64 rng(seed);
  auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53; };
  const size_t N = static_cast<size_t>(n);
  std::vector<double> a(N * N);  // column j at a[j * n .. j * n + n)
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (size_t i = 0; i < a.size(); i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform())), t = kTwoPi * uniform();
    a[i] = r * std::cos(t);
    if (i + 1 < a.size()) a[i + 1] = r * std::sin(t);
  }
  // Modified Gram–Schmidt over the columns, each pass twice ("twice is enough": Giraud et al.,
  // Numer. Math. 2005); the diagonal of R stays positive, so Q is Haar-distributed.
  for (size_t j = 0; j < N; ++j) {
    double* cj = &a[j * N];
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t k = 0; k < j; ++k) {
        const double* ck = &a[k * N];
        double dot = 0;
        for (size_t i = 0; i < N; ++i) dot += ck[i] * cj[i];
        for (size_t i = 0; i < N; ++i) cj[i] -= dot * ck[i];
      }
    }
    double norm = 0;
    for (size_t i = 0; i < N; ++i) norm += cj[i] * cj[i];
    norm = std::sqrt(norm);
    if (!(norm > 0))
      throw std::runtime_error("rotation: a degenerate draw (seed " + std::to_string(seed) + ")");
    for (size_t i = 0; i < N; ++i) cj[i] /= norm;
  }
  auto q = torch::empty({n, n}, torch::kFloat);
  float* out = q.data_ptr<float>();
  for (size_t i = 0; i < N; ++i)
    for (size_t j = 0; j < N; ++j) out[i * N + j] = static_cast<float>(a[j * N + i]);
  return q;
}

double incoherence(const torch::Tensor& w) {
  if (w.dim() != 2) throw std::invalid_argument("incoherence: a 2-d tensor is needed");
  const auto d = w.to(torch::kDouble);
  const double fro = d.pow(2).sum().sqrt().item<double>();
  if (!(fro > 0)) return 0;
  return d.abs().max().item<double>() * std::sqrt(static_cast<double>(w.numel())) / fro;
}

}  // namespace lmquant
