// Bits per row for the vocabulary matrices (embedding, decoder; the tied embedding+decoder).
//
// WikiText-2 is Zipfian: a few thousand of the 33,278 rows of each vocabulary matrix carry most
// of the tokens. Each row v gets its own width b_v from a set W (e.g. {2, 3, 4, 8}) so that the
// matrix's mean code width is at most a budget B, at the least predicted loss:
//
//   minimise Σ_v s_v(b_v)  subject to  (1/V) Σ_v b_v <= B,  b_v ∈ W,
//
// where s_v(b) is the row's sensitivity at width b: what quantizing that row alone at b bits
// (with the configuration's clip rule and rounding) is predicted to cost. Two estimators:
//
//   frequency: s_v(b) = f_v · ‖F δ_v(b)‖²
//       f_v the row's token frequency on the train split (add-one smoothed), δ_v(b) = w_v − ŵ_v(b)
//       the row's quantization error, F what the row feeds: for the embedding W_ih of layer 0
//       (an embedding row only ever reaches the model through W_ih e), for the decoder the
//       identity. (The minimum: frequency times the row's quantization error.)
//   output:    the embedding as above; the decoder by the Fisher information of the softmax
//       cross-entropy, kept to its diagonal blocks (one per row: the cross-row terms
//       −p_v p_u dropped), on the float model's calibration positions t = 1..N with top-layer
//       output h_t and next-token distribution p_t:
//         s_v(b) = ½ · (1/N) Σ_t p_tv (1 − p_tv) (δ_v(b) · h_t)²  ≈ the row's share of
//         E_t KL(p_t ‖ p̂_t), to second order (a logit error ε_v changes the loss by
//         ½ p_v (1 − p_v) ε_v² on average over targets drawn from p).
//       A decoder row matters where the model predicts its token, which the frequency proxy only
//       approximates (p_tv summed over t is the model's expected count of v).
//
// The allocation (a multiple-choice knapsack with equal item sizes): each row's widths are
// reduced to the lower convex hull of (b, s_v(b)); every hull step from b to b' has a gain
// per bit (s_v(b) − s_v(b')) / (b' − b), non-increasing along a row. All rows start at the
// narrowest width; the steps of all rows are taken in order of decreasing gain per bit while
// the budget allows (a step that does not fit ends its row; smaller steps of other rows still
// fill the remainder). This is the optimum of the continuous relaxation, up to the last
// partial step (Lagrangian relaxation: Everett 1963; for bit allocation, Shoham & Gersho,
// "Efficient bit allocation for an arbitrary set of quantizers", IEEE TASSP 1988).
//
// Worked example: W = {2, 4}, B = 3, two rows with s_0 = (10, 1) and s_1 = (2, 1) at (2, 4):
// the steps gain 9/2 and 1/2 per bit; the budget (mean 3 over two rows: 2 bits to spend) takes
// row 0's step only → widths (4, 2), predicted cost 1 + 2 = 3.
//
// Accounting: each row's codes at its width, plus ⌈log2 |W|⌉ bits per row naming its width
// (quantize_model.h), plus the scales as before.
//
// Width 0: the zero row. A set may start at 0 (e.g. {0, 1, 2, 3, 4, 7}); a row given 0 bits is
// dropped — ŵ_v = 0 (codes 0, step 0) — so its error is the row itself, δ_v(0) = w_v, and s_v(0)
// is what zeroing it costs (f_v ‖F w_v‖² by frequency; for the decoder's Fisher ½ (1/N) Σ_t
// p_tv (1 − p_tv) (w_v · h_t)², its logit falling back to the bias). It costs no code bits, only
// its width tag and its stored step (the accounting keeps every row's step). Where a rare
// token's row is worth less than its 1-bit codes, its bits go to rows that need them: at 1.5
// bits per weight on a 2×200 WikiText-2 model 26,900 of the 33,278 embedding rows sat at the
// narrowest width of {1, 2, 3, 4, 7}. Worked example: W = {0, 2}, B = 1, s_0 = (5, 1),
// s_1 = (0.5, 0.1): steps gain 2 and 0.2 per bit; the two bits go to row 0 → (2, 0), cost 1.5.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace lmquant {

enum class RowSensitivity { kFrequency, kOutput };
std::string to_string(RowSensitivity s);
RowSensitivity parse_row_sensitivity(const std::string& s);  // "frequency" or "output"

// Validates a width set: 0..8 each (0: the zero row; the grid may allow fewer: 1 bit is midrise
// only), strictly increasing, at least two. Throws std::invalid_argument naming the value.
void check_row_widths(const std::vector<int>& widths);
// Bits per row that name its width: ⌈log2 |W|⌉.
int width_tag_bits(const std::vector<int>& widths);

struct RowAllocation {
  std::vector<int> bits;  // b_v per row
  double mean_bits = 0;   // (1/V) Σ b_v
  double predicted = 0;   // Σ_v s_v(b_v)
};

// cost [|W|, V]: s_v(b) for each width of `widths` (increasing) and row. Throws
// std::invalid_argument when the budget is below the narrowest width or the shapes disagree.
RowAllocation allocate_row_widths(const torch::Tensor& cost, const std::vector<int>& widths,
                                  double budget);

// s_v(b) = f_v · ‖F δ_v‖² for each error δ [V, n] of `errors`: freq [V] (probabilities), feed F
// [m, n] or undefined for the identity. → [|errors|, V] float64.
torch::Tensor frequency_sensitivity(const std::vector<torch::Tensor>& errors,
                                    const torch::Tensor& freq, const torch::Tensor& feed = {});

// The decoder's diagonal-block Fisher: s_v(b) = ½ (1/N) Σ_t p_tv (1 − p_tv) (δ_v · h_t)² with p_t
// = softmax(W h_t + bias) of the float decoder W [V, n], bias [V], h [N, n]. Positions in
// blocks of `block` (the [block, V] logits are the only large buffer). → [|errors|, V] float64.
torch::Tensor fisher_sensitivity(const std::vector<torch::Tensor>& errors, const torch::Tensor& h,
                                 const torch::Tensor& weight, const torch::Tensor& bias,
                                 int64_t block = 512);

// log Σ_v exp(W h_t + b)_v for each position (double [N]): the softmax's normalizers, computed
// once so that blocks of the decoder's rows get their p_tv without the other rows.
torch::Tensor decoder_log_normalizer(const torch::Tensor& h, const torch::Tensor& weight,
                                     const torch::Tensor& bias, int64_t block = 512);
// fisher_sensitivity for a block of the decoder's rows: errors [n_rows, n], weight [n_rows, n]
// and bias [n_rows] the block's, lse [N] decoder_log_normalizer's (p_tv = exp(w_v·h_t + b_v −
// lse_t)). Equal to the block's columns of fisher_sensitivity up to float rounding.
torch::Tensor fisher_sensitivity_rows(const std::vector<torch::Tensor>& errors,
                                      const torch::Tensor& h, const torch::Tensor& weight,
                                      const torch::Tensor& bias, const torch::Tensor& lse,
                                      int64_t block = 512);

// The train split's add-one-smoothed unigram frequencies f_v = (count_v + 1) / (N + V) over a
// vocabulary of V, from the counts of each id (length <= V; missing ids count 0). Throws
// std::invalid_argument when counts name ids outside the vocabulary.
torch::Tensor smoothed_frequency(const torch::Tensor& counts, int64_t vocab);

}  // namespace lmquant
