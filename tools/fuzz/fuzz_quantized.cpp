// libFuzzer target: quantized and packed files (quant/quantized_io.h) — the checkpoint parser,
// the strict layout check against the file's configuration, unpacking and dequantizing, both
// ways the library reads them (the folded float model, and codes only for the int8 engine).
// Any input must give a model or a std::exception, never a crash, a sanitizer report, or an
// allocation the file does not justify.
#include <cstdint>
#include <string>

#include "quant/quantized_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (bool float_matrices : {true, false}) {
    try {
      (void)lmquant::parse_quantized(bytes, "fuzz.lmq", torch::kCPU, float_matrices);
    } catch (const std::exception&) {
    }
  }
  return 0;
}
