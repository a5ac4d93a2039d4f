// libFuzzer target: record JSON (report/record.h) as sweeps write it (JSON lines) and reports
// (a JSON array), read back with read_records: every field checked, unknown ones refused.
#include <cstdint>
#include <string>

#include "report/report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& r : lmquant::read_records(text)) (void)r.to_json().dump();
  } catch (const std::exception&) {
  }
  return 0;
}
