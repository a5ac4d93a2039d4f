// PNG plots rendered by gnuplot (Debian's gnuplot-nox): lmquant writes the data and the script,
// gnuplot draws. Each function returns "" on success, else why no plot was made (gnuplot
// missing or failing), which the caller reports; a missing plot never fails a report.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "report/report.h"

namespace lmquant {

// Perplexity vs bits, one line per method variant (log scale on perplexity).
std::string plot_perplexity_vs_bits(const std::vector<Record>& records, const std::string& png);

// Perplexity vs multiply-add overhead for the OCS records, one line per clip rule/grid variant,
// the clip-only results at 0% overhead.
std::string plot_perplexity_vs_overhead(const std::vector<Record>& records, const std::string& png);

// Histograms of a matrix's weights before and after OCS, each with its quantization grid
// (the levels q·s for threshold α at `bits`) drawn as vertical lines.
std::string plot_weight_histograms(const std::string& title, const torch::Tensor& before,
                                   float alpha_before, const torch::Tensor& after,
                                   float alpha_after, int bits, const std::string& png);

}  // namespace lmquant
