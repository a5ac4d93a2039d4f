// Incoherence processing: a random rotation of each matrix's input side before it is quantized
// (QuIP: Chee, Cai, Kuleshov, De Sa, "QuIP: 2-Bit Quantization of Large Language Models With
// Guarantees", NeurIPS 2023; QuaRot: Ashkboos et al., NeurIPS 2024, with Hadamard rotations).
//
// A matrix W [rows, n] acting on x ∈ Rⁿ computes the same function as (W Q)(Qᵀ x) for any
// orthogonal Q. Quantizing W Q instead of W spreads a weight that stands out in a row (an input
// channel with large weights) over all n entries of the row: for a Haar-random Q each rotated
// row is close to Gaussian with the row's energy, so its largest entry shrinks toward
// ‖w‖ · √(2 ln n / n) and a clip rule's α covers the row with a finer step. QuIP's measure:
//
//   μ(W) = max_ij |W_ij| · √(rows · n) / ‖W‖_F      (1 ≤ μ ≤ √(rows · n); a flat matrix has 1)
//
// The quantized model stores Ŵ_Q ≈ W Q; the function is Ŵ_Q (Qᵀ x), i.e. the simulated weight is
// Ŵ = Ŵ_Q Qᵀ (what lmquant's folded model holds). Error-compensating rounding sees the rotated
// inputs: X_Q = X Q, H_Q = Qᵀ H Q.
//
// In an LSTM LM every matrix reads one of these input spaces, and one Q per space is drawn
// (lmquant draws one per input width n, so spaces of equal width share it):
//   the embedding space (width E): the embedding's rows and W_ih of layer 0 — free at run time
//     (the stored rows are e Q; W_ih Q reads them as they are);
//   the output h^l of layer l (width H): W_hh of layer l, W_ih of layer l+1, the decoder after the
//     top layer (and the tied embedding+decoder, whose E = H) — at run time h^l Q once per step
//     (n² multiply-adds per token per layer, 40,000 at H = 200: an eighth of W_hh's 160,000).
//
// Q: Haar-random, from a seed: n² standard normals (Box–Muller on a 64-bit Mersenne Twister,
// both spelled out here so every platform draws the same numbers), orthonormalised by modified
// Gram–Schmidt in double, twice (the columns of the Q factor of a QR with a positive diagonal,
// which is Haar-distributed: Mezzadri, "How to generate random matrices from the classical
// compact groups", Notices AMS 2007), rounded to float. A file stores the seed (64 bits per
// rotated matrix), not Q.
//
// Worked example (n = 2, Q the rotation by 45°, Q = [[1, −1], [1, 1]] / √2): the row w = [2, 0]
// has one outlier (μ = √2 for this 1 × 2 matrix); w Q = [√2, −√2] (μ = 1). At 1 bit (midrise,
// levels ±s) with α = max|w|: w needs s = 2 and gets ŵ = [2, 2] (error² 4); w Q gets s = √2 and
// is exact, so Ŵ = (w Q) Qᵀ = [2, 0] (error² 0).
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace lmquant {

// The seed of the rotation of input width n in a configuration seeded with `seed`.
uint64_t rotation_seed(uint64_t seed, int64_t n);

// A Haar-random orthogonal Q (float [n, n], QᵀQ = I to float precision), deterministic in `seed`
// (the same on every platform up to the last bit of float rounding). Throws std::invalid_argument
// unless n >= 1.
torch::Tensor random_rotation(int64_t n, uint64_t seed);

// μ(W) above for a 2-d tensor; 0 for an all-zero matrix.
double incoherence(const torch::Tensor& w);

}  // namespace lmquant
