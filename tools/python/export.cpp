// Model.export_onnx: the model as an ONNX graph for ONNX Runtime (export/onnx_export.h), as
// `lmquant export --onnx`.
#include "export/onnx_export.h"
#include "module.h"
#include "quant/quantized_io.h"

namespace lmquant::python {

void register_export(py::module_& m) {
  auto model = py::reinterpret_borrow<py::class_<Model, std::shared_ptr<Model>>>(m.attr("Model"));
  model.def(
      "export_onnx",
      [](Model& self, const std::string& path, bool int8) {
        std::lock_guard<std::mutex> lock(self.mutex);
        interruptible([&] {
          if (!int8) return save_onnx(path, *self.loaded.model);
          // The codes: a quantize() result's, or a quantized/packed file's (read again: a
          // float-engine model does not hold them).
          if (self.quantized) return save_onnx(path, *self.loaded.model, &self.quantized->tensors);
          if (self.file) return save_onnx(path, *self.loaded.model, &self.file->matrices);
          if (self.loaded.format != "quantized" && self.loaded.format != "packed")
            throw std::invalid_argument(
                "int8=True needs quantized codes: quantize() the model or load a quantized or "
                "packed file");
          const QuantizedFile f = read_quantized(self.loaded.path);
          save_onnx(path, *f.loaded.model, &f.matrices);
        });
      },
      py::arg("path"), py::arg("int8") = false, R"doc(
Writes the model as an ONNX graph (opset 17) for ONNX Runtime, as `lmquant export --onnx`:
inputs tokens int64 [seq, batch] and the state h0, c0 [layers, batch, hidden]; outputs logprobs
[seq, batch, vocab], h_n, c_n. A quantized model exports its dequantized weights (the simulated
model); int8=True writes its <= 8-bit row codes as ONNX Runtime's DynamicQuantizeLSTM and
DynamicQuantizeMatMul (ValueError for group steps, OCS splits or rotations).

>>> q = lmquant.load("model.pt").quantize(bits=4, clip="max", granularity="row")
>>> q.export_onnx("model.4b.onnx", int8=True)
)doc");
}

}  // namespace lmquant::python
