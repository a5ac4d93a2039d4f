// lmquant export: a model (float, quantized or packed file) as an ONNX graph for ONNX Runtime
// (export/onnx_export.h); tools/onnx/ort_eval.js evaluates it there.
#include <cstdio>

#include "cli.h"
#include "export/onnx_export.h"
#include "quant/quantized_io.h"
#include "util/atomic_file.h"

namespace lmquant::cli {

int cmd_export(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, onnx_path;
  bool int8 = false;
  po::options_description desc;
  po::options_description m("Export");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(),
     "model file: .lmq, a PyTorch file, or a quantized/packed file (exported as its dequantized "
     "weights: the simulated quantized model)")
    ("onnx", po::value(&onnx_path)->required(), "the ONNX file to write (opset 17)")
    ("int8", po::bool_switch(&int8)->default_value(false),
     "a quantized or packed file's <= 8-bit row codes as int8 weights: DynamicQuantizeLSTM and "
     "DynamicQuantizeMatMul (ONNX Runtime's com.microsoft ops, the form its own dynamic "
     "quantization writes); the embedding stays float");
  // clang-format on
  desc.add(m).add(model_file_options(common)).add(compute_options(common));
  po::variables_map vm;
  if (!parse("export", "--model M --onnx OUT.onnx [--int8]", desc, args, vm)) return 0;
  setup_compute(common);
  QuantizedFile file;
  if (int8) {
    file = with_flag("--model", [&] { return read_quantized(model_path); });
  } else {
    file.loaded = load_model_file(model_path, common);
  }
  const LoadedModel& loaded = file.loaded;
  const auto* codes = int8 ? &file.matrices : nullptr;
  const std::string bytes =
      with_flag(int8 ? "--int8" : "--model", [&] { return onnx_model(*loaded.model, codes); });
  with_flag("--onnx", [&] { write_file_atomic(onnx_path, bytes); });
  std::printf(
      "%s: %s (%s%s) written as ONNX: inputs tokens [seq, batch], h0, c0 [%lld, batch, "
      "%lld]; outputs logprobs [seq, batch, %lld], h_n, c_n\n",
      onnx_path.c_str(), loaded.model->config().describe().c_str(), loaded.format.c_str(),
      int8 ? ", int8 codes" : "", static_cast<long long>(loaded.model->config().layers),
      static_cast<long long>(loaded.model->config().hidden),
      static_cast<long long>(loaded.model->config().vocab));
  return 0;
}

}  // namespace lmquant::cli
