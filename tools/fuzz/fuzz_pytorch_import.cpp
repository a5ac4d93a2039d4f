// libFuzzer target: the PyTorch importer (torch.save zip archive + pickle, read by
// lmquant's own pickle machine, lm/torch_pickle.h, then the key and shape checks).
#include <cstdint>
#include <string>

#include "lm/model_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    (void)lmquant::import_pytorch_state_dict_bytes(bytes, "fuzz.pt");
  } catch (const std::exception&) {
  }
  return 0;
}
