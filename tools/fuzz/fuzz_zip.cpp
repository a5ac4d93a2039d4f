// libFuzzer target: zip archives (util/zip_archive.h): the directory read from untrusted bytes
// and every member extracted (stored or deflated, sizes and CRC-32 checked), in /dev/shm.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "util/zip_archive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = "/dev/shm/lmquant-fuzz-zip-" + std::to_string(::getpid());
  static const bool made = [] { return ::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST; }();
  if (!made) return 0;
  const std::string zip = dir + "/in.zip", out = dir + "/out";
  {
    std::ofstream f(zip, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const lmquant::ZipArchive archive(zip);
    for (const auto& e : archive.entries()) {
      try {
        archive.extract(e.name, out);
      } catch (const std::exception&) {
      }
    }
  } catch (const std::exception&) {
  }
  std::remove(out.c_str());
  return 0;
}
