// PNG plots rendered by gnuplot (Debian's gnuplot-nox): lmquant writes the data and the script,
// gnuplot draws. Each function returns "" on success, else why no plot was made (gnuplot
// missing or failing), which the caller reports; a missing plot never fails a report.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "report/report.h"

namespace lmquant {

// Where gnuplot drew the data (the last panel's), in pixels of a width × height image: what a
// test checks so that no label can squeeze the plot. Keys sit under the data area.
struct PlotGeometry {
  double width = 0, height = 0;            // the image
  double data_width = 0, data_height = 0;  // the data area
  double data_fraction() const {
    return width > 0 && height > 0 ? data_width * data_height / (width * height) : 0;
  }
};

// Perplexity vs bits, one line per configuration family (QuantConfig::family: short names; the
// full labels are in the report's tables), the float model dashed.
std::string plot_perplexity_vs_bits(const std::vector<Record>& records, const std::string& png,
                                    PlotGeometry* geometry = nullptr);

// Perplexity vs multiply-add overhead for the OCS records, one line per clip rule/grid variant,
// the clip-only results at 0% overhead.
std::string plot_perplexity_vs_overhead(const std::vector<Record>& records, const std::string& png,
                                        PlotGeometry* geometry = nullptr);

// Histograms of a matrix's weights before and after OCS, each with its quantization grid
// (the levels q·s for threshold α at `bits`) drawn as vertical lines.
std::string plot_weight_histograms(const std::string& title, const torch::Tensor& before,
                                   float alpha_before, const torch::Tensor& after,
                                   float alpha_after, int bits, const std::string& png,
                                   PlotGeometry* geometry = nullptr);

}  // namespace lmquant
