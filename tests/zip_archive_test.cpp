// Zip archives (util/zip_archive.h): what Python's zipfile writes (tests/data/zip/corpus.zip,
// made by /usr/bin/python3's zipfile: a folder entry, two deflated members and a stored one), a
// zip64 directory built here byte by byte from APPNOTE 4.3, and damage of every kind refused
// naming the archive and member, with no partial file left.
#include "util/zip_archive.h"

#include <zlib.h>

#include <filesystem>

#include "test_utils.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;
using namespace lmquant;

namespace {

const std::string kFixture = std::string(LMQUANT_TEST_DATA_DIR) + "/zip/corpus.zip";

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// The fixture's members, as the script that wrote it made them.
const std::string kTrain = repeat(" the cat sat on the mat \n = heading = \n the dog sat \n", 20);
const std::string kValid = " the cat sat \n";
const std::string kTest = " the dog sat on the cat \n";

void put(std::string& b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b += static_cast<char>((v >> (8 * i)) & 0xFF);
}

// One stored member in a zip64 archive: every size and offset in the 32-bit fields reads
// 0xFFFFFFFF and lives in the zip64 extra field; the end record points to the zip64 end record
// through its locator.
std::string zip64_archive(const std::string& name, const std::string& data) {
  const uint32_t crc = crc32(0L, reinterpret_cast<const Bytef*>(data.data()), data.size());
  std::string b;
  put(b, 0x04034b50, 4), put(b, 45, 2), put(b, 0, 2), put(b, 0, 2), put(b, 0, 4), put(b, crc, 4);
  put(b, 0xFFFFFFFF, 4), put(b, 0xFFFFFFFF, 4), put(b, name.size(), 2), put(b, 20, 2);
  b += name;
  put(b, 1, 2), put(b, 16, 2), put(b, data.size(), 8), put(b, data.size(), 8);
  b += data;
  const uint64_t dir = b.size();
  put(b, 0x02014b50, 4), put(b, 45, 2), put(b, 45, 2), put(b, 0, 2), put(b, 0, 2), put(b, 0, 4);
  put(b, crc, 4), put(b, 0xFFFFFFFF, 4), put(b, 0xFFFFFFFF, 4), put(b, name.size(), 2);
  put(b, 28, 2), put(b, 0, 2), put(b, 0, 2), put(b, 0, 2), put(b, 0, 4), put(b, 0xFFFFFFFF, 4);
  b += name;
  put(b, 1, 2), put(b, 24, 2), put(b, data.size(), 8), put(b, data.size(), 8), put(b, 0, 8);
  const uint64_t dir_size = b.size() - dir, end64 = b.size();
  put(b, 0x06064b50, 4), put(b, 44, 8), put(b, 45, 2), put(b, 45, 2), put(b, 0, 4), put(b, 0, 4);
  put(b, 1, 8), put(b, 1, 8), put(b, dir_size, 8), put(b, dir, 8);
  put(b, 0x07064b50, 4), put(b, 0, 4), put(b, end64, 8), put(b, 1, 4);
  put(b, 0x06054b50, 4), put(b, 0, 2), put(b, 0, 2), put(b, 0xFFFF, 2), put(b, 0xFFFF, 2);
  put(b, 0xFFFFFFFF, 4), put(b, 0xFFFFFFFF, 4), put(b, 0, 2);
  return b;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, bytes);
}

}  // namespace

TEST(ZipArchive, ReadsWhatPythonsZipfileWrote) {
  const ZipArchive zip(kFixture);
  ASSERT_EQ(zip.entries().size(), 4u);
  EXPECT_EQ(zip.entries()[0].name, "mini/");
  const ZipEntry* train = zip.find("mini/wiki.train.tokens");
  ASSERT_NE(train, nullptr);
  EXPECT_EQ(train->method, 8);
  EXPECT_EQ(train->uncompressed_size, kTrain.size());
  EXPECT_LT(train->compressed_size, kTrain.size() / 4);  // deflated
  EXPECT_EQ(zip.find("mini/wiki.test.tokens")->method, 0);
  EXPECT_EQ(zip.find("wiki.train.tokens"), nullptr);  // names are whole paths

  test::TempDir tmp;
  zip.extract("mini/wiki.train.tokens", tmp.file("train.txt"));
  zip.extract("mini/wiki.valid.tokens", tmp.file("valid.txt"));
  zip.extract("mini/wiki.test.tokens", tmp.file("test.txt"));
  EXPECT_EQ(read_file(tmp.file("train.txt")), kTrain);
  EXPECT_EQ(read_file(tmp.file("valid.txt")), kValid);
  EXPECT_EQ(read_file(tmp.file("test.txt")), kTest);
  zip.extract("mini/", tmp.file("empty"));
  EXPECT_EQ(read_file(tmp.file("empty")), "");
}

TEST(ZipArchive, ReadsAZip64Directory) {
  test::TempDir tmp;
  write_bytes(tmp.file("z64.zip"), zip64_archive("a/b.txt", kValid));
  const ZipArchive zip(tmp.file("z64.zip"));
  ASSERT_EQ(zip.entries().size(), 1u);
  EXPECT_EQ(zip.entries()[0].name, "a/b.txt");
  EXPECT_EQ(zip.entries()[0].uncompressed_size, kValid.size());
  EXPECT_EQ(zip.entries()[0].local_header_offset, 0u);
  zip.extract("a/b.txt", tmp.file("b.txt"));
  EXPECT_EQ(read_file(tmp.file("b.txt")), kValid);
}

TEST(ZipArchive, DamageIsRefusedNamingTheArchiveAndMember) {
  test::TempDir tmp;
  const std::string good = read_file(kFixture);
  const std::string train = "mini/wiki.train.tokens";
  // Where the train member's deflate data and its directory entry's CRC-32 sit.
  const size_t data_at = good.find(train) + train.size();
  const size_t dir_entry = good.rfind(std::string("PK\x01\x02", 4), good.rfind(train));

  auto refused = [&](std::string bytes, const std::string& expected, const std::string& member) {
    write_bytes(tmp.file("bad.zip"), bytes);
    const std::string out = tmp.file("out.txt");
    try {
      ZipArchive(tmp.file("bad.zip")).extract(member, out);
      ADD_FAILURE() << "expected: " << expected;
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(expected), std::string::npos) << m;
      EXPECT_NE(m.find(tmp.file("bad.zip")), std::string::npos) << m;
    }
    EXPECT_FALSE(fs::exists(out)) << expected;  // never a partial file
    for (const auto& e : fs::directory_iterator(tmp.path()))
      EXPECT_EQ(e.path().filename().string().find("out.txt."), std::string::npos);
  };

  std::string flipped = good;
  flipped[data_at + 10] ^= 0x55;  // inside the deflate stream
  write_bytes(tmp.file("flipped.zip"), flipped);
  try {
    ZipArchive(tmp.file("flipped.zip")).extract(train, tmp.file("x"));
    ADD_FAILURE() << "a damaged deflate stream was extracted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("member " + train), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp.file("x")));

  std::string crc = good;
  crc[dir_entry + 16] ^= 0x01;
  refused(crc, "has CRC-32 610ff41e, the directory says 610ff41f", train);

  std::string size = good;
  size[dir_entry + 24] += 1;  // one byte more than the member inflates to
  refused(size, "has 1060 bytes, the directory says 1061", train);

  std::string method = good;
  method[dir_entry + 10] = 12;  // bzip2
  refused(method, "compressed with method 12", train);

  refused(good, "member mini/wiki.missing is not in the archive (it holds mini/, ",
          "mini/wiki.missing");
  refused(good.substr(0, good.size() - 30), "not a readable zip archive (no zip end-of-directory",
          train);
  refused(good.substr(0, data_at + 20) + good.substr(good.find("PK\x01\x02")),
          "not a readable zip archive", train);  // the directory points past the end
  refused("", "too short for a zip archive", train);
}
