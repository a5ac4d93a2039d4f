// libFuzzer target: the corpus registry's parser (corpus/registry.h parse_registry), strict about
// fields, hashes, sizes, addresses and folder names.
#include <cstdint>
#include <string>

#include "corpus/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)lmquant::parse_registry(text);
  } catch (const std::exception&) {
  }
  return 0;
}
