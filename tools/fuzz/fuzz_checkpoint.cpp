// libFuzzer target: the .lmq checkpoint parser and the model built from it.
// Any input must give a Checkpoint or a std::exception, never a crash, a sanitizer report, or an
// allocation the file does not justify.
#include <cstdint>
#include <string>

#include "lm/checkpoint.h"
#include "lm/model_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    (void)lmquant::parse_checkpoint(bytes, "fuzz.lmq");
    (void)lmquant::load_model_bytes(bytes, "fuzz.lmq");
  } catch (const std::exception&) {
  }
  return 0;
}
