// Quantized model files (`quantize --save-quantized`): an lmquant checkpoint (lm/checkpoint.h)
// of kind "quantized" holding, per quantized matrix NAME, the int16 codes `NAME.codes`
// (rows x (cols + splits)), the steps `NAME.step` (float [rows, ⌈(cols + splits) / G⌉]: one per
// group of G consecutive columns of a row), `NAME.group_size` (int64 [1]: G; cols + splits when
// one step spans a row; absent in files written before group scales, meaning one step per row)
// and the OCS source list `NAME.ocs_source`; every other weight in float under PyTorch's names; and
// in meta the quantization config and the SHA-256 of the model file it came from. A matrix
// quantized after a rotation (quant/rotation.h) also has `NAME.rotation_seed` (int64 [1], the
// seed's 64 bits): its codes are of W Q, and the loader draws Q again to give Ŵ = Ŵ_Q Qᵀ.
//
// Packed files (`quantize --save-packed`, kind "packed") are the same but store each matrix at
// its bit width: for a matrix of 2..8 bits, `NAME.packed` (uint8, the codes bit-packed in
// row-major order as quant/bit_packing.h describes: two 4-bit codes per byte, ...),
// `NAME.bits` (int64 [1]) and `NAME.shape` (int64 [2]: rows, cols + splits) replace
// `NAME.codes`; matrices of more than 8 bits keep their int16 `NAME.codes`. Group steps are
// float16 (they are float16 values already, quant_types.h stored_step), as are row and tensor
// steps with half_scales; otherwise row and tensor steps are float32. Biases and every unquantized
// weight stay float32.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "lm/model_io.h"
#include "quant/quantize_model.h"

namespace lmquant {

// Writes atomically (temp file + rename); `packed` picks the packed layout.
void save_quantized(const std::string& path, const LoadedModel& source, const QuantizedModel& qm,
                    bool packed = false);

// A quantized or packed file: the folded float model (as load_any_model gives it) and each
// quantized matrix's codes, steps and OCS list (what an integer engine runs from). Codes are
// int16 from a quantized file and from a packed file's matrices over 8 bits, int8 otherwise.
struct QuantizedFile {
  LoadedModel loaded;
  std::vector<QuantizedMatrix> matrices;
};
// Throws std::runtime_error naming the file when it is not a quantized or packed file, or is
// truncated, corrupt or inconsistent. With `float_matrices` false the quantized matrices are
// never dequantized: the model's tensors for them are left empty (never allocated) and only the
// codes and steps are held — what an integer engine needs (engine/int8_engine.h), at a fraction
// of the float model's memory.
QuantizedFile read_quantized(const std::string& path, const torch::Device& device = torch::kCPU,
                             bool float_matrices = true);

// The same from the file's bytes; `path` names it in errors (the fuzz target's entry).
QuantizedFile parse_quantized(std::string_view bytes, const std::string& path,
                              const torch::Device& device = torch::kCPU,
                              bool float_matrices = true);

// Loads an lmquant checkpoint, a PyTorch state_dict or a quantized/packed file. A quantized file
// gives its folded model (dequantized, OCS halves added back); `meta` then holds "quant" and
// "source_sha256", and `format` is "quantized" or "packed". `format` (lm/pytorch_layout.h)
// forces a PyTorch file's layout.
LoadedModel load_any_model(const std::string& path, const torch::Device& device = torch::kCPU,
                           ImportFormat format = ImportFormat::kAuto);

}  // namespace lmquant
