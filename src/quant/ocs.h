// Outlier Channel Splitting (Zhao et al., "Improving Neural Network Quantization without
// Retraining using Outlier Channel Splitting", ICML 2019, arXiv 1901.09504).
//
// W is out x in, fed by x (in). Split ⌈r · in⌉ times; each time take the column holding the
// largest |w| among all current columns (a column already split may be split again; ties go to
// the lowest index), halve it, and append the halved copy as a new column reading a duplicate of
// the same input. Then W' x' = W x exactly, x' = [x ; x[idx]], while max|W'| shrinks.
// Worked example (tests/ocs_test.cpp; with r = 0.34 it would be ⌈1.02⌉ = 2 splits, so r = 0.33):
// W = [[0.1, 2.0, -0.3], [0.2, -1.6, 0.4]], r = 0.33 -> ⌈0.99⌉ = 1 split;
// column 1 holds 2.0 -> W' = [[0.1, 1.0, -0.3, 1.0], [0.2, -0.8, 0.4, -0.8]], idx = [1].
//
// Grid-aware split (the quantization-aware split of Zhao et al.'s released code,
// github.com/cornell-zhang/dnn-quant-ocs): with quantization step s, the halves become
// w/2 - s/4 and w/2 + s/4, so that round(w/2s - 1/4) + round(w/2s + 1/4) stays next to round(w/s)
// instead of both halves rounding the same way (w/s = 3: 1 + 2 = 3, where 2 · round(1.5) = 4).
//
// Since a split halves a column, its max |w| halves too: a priority queue of column maxima
// finds each split in O(log in), and the split matrix is one gather and scale.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace lmquant {

struct OcsPlan {
  int64_t in = 0;                   // original columns
  std::vector<int64_t> split_from;  // event t: column split (index in the widened matrix)
  std::vector<int64_t> source;      // appended column t (= in + t) reads x[source[t]]
  int64_t splits() const { return static_cast<int64_t>(source.size()); }
};

// Number of splits for ratio r in [0, 1]: ⌈r · in⌉. Throws std::invalid_argument for r outside.
int64_t ocs_split_count(double ratio, int64_t in);

// Plans the splits of w (out x in) by max |w| per column.
OcsPlan plan_ocs(const torch::Tensor& w, double ratio);

// W' (out x (in + splits)). `step` (per row [out], a 0-dim scalar, or undefined) turns on the
// grid-aware rule; undefined gives the plain halves.
torch::Tensor apply_ocs(const torch::Tensor& w, const OcsPlan& plan,
                        const torch::Tensor& step = torch::Tensor());

// The folded matrix: each appended column added back onto its source column (out x in).
torch::Tensor fold_ocs(const torch::Tensor& w_split, const OcsPlan& plan);

// x' = [x ; x[..., source]] along the last axis: the duplicated activations.
torch::Tensor expand_input(const torch::Tensor& x, const OcsPlan& plan);

// The source list as an int64 tensor (the LSTM's Expansion index).
torch::Tensor ocs_index(const OcsPlan& plan, const torch::Device& device);

}  // namespace lmquant
