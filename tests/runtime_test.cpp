#include "util/runtime.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

namespace lmquant {
namespace {

// Resident bytes of this process (/proc/self/statm's second field, in pages).
long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

TEST(Runtime, ReleaseFreeMemoryReturnsFreedHeapBlocks) {
  configure_allocator();              // blocks below kMmapThreshold stay in the heap when freed
  constexpr size_t kBlock = 8 << 20;  // 8 MiB each, well below the 64 MiB threshold
  std::vector<char*> blocks;
  for (int i = 0; i < 8; ++i) {
    blocks.push_back(static_cast<char*>(std::malloc(kBlock)));
    ASSERT_NE(blocks.back(), nullptr);
    std::memset(blocks.back(), 1, kBlock);  // resident
  }
  // A small live block after them keeps the freed ones from being the top of the heap.
  char* pin = static_cast<char*>(std::malloc(64));
  ASSERT_NE(pin, nullptr);
  for (char* b : blocks) std::free(b);
  const long freed = resident_bytes();
  release_free_memory();
  const long released = resident_bytes();
  std::free(pin);
  // 64 MiB were freed into the heap; at least half of it leaves the resident set.
  EXPECT_LT(released, freed - static_cast<long>(32 << 20))
      << "resident " << freed << " bytes before, " << released << " after";
}

}  // namespace
}  // namespace lmquant
