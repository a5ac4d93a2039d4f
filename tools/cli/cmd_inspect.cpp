// lmquant inspect: per-matrix weight statistics (max|w|, std, excess kurtosis, top outlier
// columns) and, for one matrix, the histogram before/after OCS with the quantization grid.
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "lm/matrices.h"
#include "quant/quantize_model.h"
#include "quant/quantized_io.h"
#include "report/plots.h"
#include "util/atomic_file.h"

namespace lmquant::cli {

int cmd_inspect(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, matrix = "recurrent.l0", png;
  double ratio = 0.1;
  int bits = 4;
  po::options_description desc;
  po::options_description m("Inspect");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(), "model file (.lmq or a PyTorch file)")
    ("matrix", po::value(&matrix)->default_value(matrix),
     "matrix to plot: embedding, decoder, input.l{k}, recurrent.l{k}, projection.l{k}")
    ("expand-ratio", po::value(&ratio)->default_value(ratio), "OCS ratio for the plot")
    ("bits", po::value(&bits)->default_value(bits), "grid drawn on the plot (max clipping)")
    ("png", po::value(&png)->default_value(""),
     "histogram path (default: lmquant-inspect/histogram_MATRIX.png in the current directory)");
  // clang-format on
  desc.add(m).add(model_file_options(common)).add(compute_options(common));
  po::variables_map vm;
  if (!parse("inspect", "--model M [--matrix recurrent.l0] [--png FILE]", desc, args, vm)) return 0;
  setup_compute(common);
  LoadedModel loaded = load_model_file(model_path, common);
  const NamedMatrix plotted =
      with_flag("--matrix", [&] { return find_matrix(loaded.model->config(), matrix); });
  if (png.empty()) {
    make_directories("lmquant-inspect");
    png = "lmquant-inspect/histogram_" + matrix + ".png";
  }
  QuantConfig q;
  q.method = Method::kOcs;
  q.bits = bits;
  q.expand_ratio = ratio;
  QuantizedModel qm = quantize_model(loaded.model, q);
  std::printf("%s: %s, %s%s\n", model_path.c_str(), loaded.format.c_str(),
              loaded.model->config().describe().c_str(),
              loaded.source.empty() ? "" : ("; " + loaded.source).c_str());
  std::printf("%-18s %12s %8s %8s %10s  %s\n", "matrix", "shape", "max|w|", "std", "kurtosis",
              "top outlier columns (max|w| in column)");
  for (size_t i = 0; i < qm.matrices.size(); ++i) {
    const auto& name = qm.matrices[i].name;
    torch::Tensor w = find_matrix(loaded.model->config(), name)
                          .weight(*loaded.model)
                          .detach()
                          .cpu()
                          .to(torch::kDouble);
    const double sd = w.std().item<double>();
    const double kurt = ((w - w.mean()).pow(4).mean() / std::pow(sd, 4)).item<double>() - 3;
    auto colmax = std::get<0>(w.abs().max(0));
    auto top = colmax.topk(std::min<int64_t>(3, colmax.numel()));
    std::string cols;
    for (int64_t k = 0; k < std::get<1>(top).numel(); ++k)
      cols += std::to_string(std::get<1>(top)[k].item<int64_t>()) + " (" +
              std::to_string(std::get<0>(top)[k].item<double>()).substr(0, 6) + ") ";
    std::printf("%-18s %5lldx%-6lld %8.4f %8.4f %10.2f  %s\n", name.c_str(),
                static_cast<long long>(w.size(0)), static_cast<long long>(w.size(1)),
                qm.matrices[i].max_abs_before, sd, kurt, cols.c_str());
    if (name != plotted.name) continue;
    auto split = apply_ocs(w.to(torch::kFloat), qm.tensors[i].plan);
    const std::string msg = plot_weight_histograms(
        matrix + ", OCS r=" + std::to_string(ratio).substr(0, 4), w.to(torch::kFloat),
        static_cast<float>(qm.matrices[i].max_abs_before), split,
        static_cast<float>(qm.matrices[i].alpha), bits, png);
    if (!msg.empty()) throw std::runtime_error(msg);
  }
  std::printf("histogram of %s before/after OCS (r=%g, %d-bit grid) written to %s\n",
              matrix.c_str(), ratio, bits, png.c_str());
  return 0;
}

}  // namespace lmquant::cli
