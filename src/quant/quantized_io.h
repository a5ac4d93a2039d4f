// Quantized model files (`quantize --save-quantized`): an lmquant checkpoint (lm/checkpoint.h)
// of kind "quantized" holding, per quantized matrix NAME, the int16 codes `NAME.codes`
// (rows x (cols + splits)), the steps `NAME.step` (float [rows, ⌈(cols + splits) / G⌉]: one per
// group of G consecutive columns of a row), `NAME.group_size` (int64 [1]: G; cols + splits when
// one step spans a row; absent in files written before group scales, meaning one step per row)
// and the OCS source list `NAME.ocs_source`; every other weight in float under PyTorch's names; and in meta the
// quantization config and the SHA-256 of the model file it came from.
#pragma once
#include <string>

#include "lm/model_io.h"
#include "quant/quantize_model.h"

namespace lmquant {

void save_quantized(const std::string& path, const LoadedModel& source, const QuantizedModel& qm);

// Loads an lmquant checkpoint, a PyTorch state_dict or a quantized file. A quantized file gives
// its folded model (dequantized, OCS halves added back); `meta` then holds "quant" and
// "source_sha256", and `format` is "quantized".
LoadedModel load_any_model(const std::string& path, const torch::Device& device = torch::kCPU);

}  // namespace lmquant
