// Whole-or-nothing files (util/atomic_file.h): a failed write leaves the old file and no temp.
#include <filesystem>

#include "test_utils.h"
#include "util/atomic_file.h"

using namespace lmquant;
namespace fs = std::filesystem;

TEST(AtomicFile, ReplacesWholeOrNotAtAll) {
  lmquant::test::TempDir tmp;
  const std::string f = tmp.file("x.txt");
  write_file_atomic(f, "one");
  EXPECT_EQ(read_file(f), "one");
  // A writer that fails half-way leaves the previous contents and no temporary file.
  EXPECT_THROW(write_file_atomic(f,
                                 [](std::ostream& o) {
                                   o << "partial";
                                   throw std::runtime_error("stop");
                                 }),
               std::runtime_error);
  EXPECT_EQ(read_file(f), "one");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) entries += 1, (void)e;
  EXPECT_EQ(entries, 1);
  EXPECT_THROW_MESSAGE(write_file_atomic("/proc/none/x.txt", "a"), std::runtime_error,
                       "cannot write /proc/none/x.txt");
  EXPECT_THROW_MESSAGE(read_file(tmp.file("missing")), std::runtime_error, "cannot read");
  make_directories(tmp.file("a/b/c"));
  EXPECT_TRUE(fs::is_directory(tmp.file("a/b/c")));
}
