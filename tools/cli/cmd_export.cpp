// lmquant export: a model (float, quantized or packed file) as an ONNX graph for ONNX Runtime
// (export/onnx_export.h); tools/onnx/ort_eval.js evaluates it there.
#include <cstdio>

#include "cli.h"
#include "export/onnx_export.h"
#include "quant/quantized_io.h"

namespace lmquant::cli {

int cmd_export(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, onnx_path;
  po::options_description desc;
  po::options_description m("Export");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(),
     "model file: .lmq, a PyTorch file, or a quantized/packed file (exported as its dequantized "
     "weights: the simulated quantized model)")
    ("onnx", po::value(&onnx_path)->required(), "the ONNX file to write (opset 17)");
  // clang-format on
  desc.add(m).add(compute_options(common));
  po::variables_map vm;
  if (!parse("export", "--model M --onnx OUT.onnx", desc, args, vm)) return 0;
  setup_compute(common);
  LoadedModel loaded = load_any_model(model_path);
  with_flag("--onnx", [&] { save_onnx(onnx_path, *loaded.model); });
  std::printf(
      "%s: %s (%s) written as ONNX: inputs tokens [seq, batch], h0, c0 [%lld, batch, "
      "%lld]; outputs logprobs [seq, batch, %lld], h_n, c_n\n",
      onnx_path.c_str(), loaded.model->config().describe().c_str(), loaded.format.c_str(),
      static_cast<long long>(loaded.model->config().layers),
      static_cast<long long>(loaded.model->config().hidden),
      static_cast<long long>(loaded.model->config().vocab));
  return 0;
}

}  // namespace lmquant::cli
