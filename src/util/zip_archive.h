// Zip archives, read without trusting them: the central directory (zip64 included) and the
// members stored or deflated, extracted by streaming (zlib's raw inflate) with each member's
// CRC-32 and size checked against the directory. Corpora published only as a zip
// (WikiText-103's wikitext-103-v1.zip) are unpacked with it; torch.save files are zips too, and
// the PyTorch reader checks their directory with it before LibTorch reads them.
//
// Layout read (PKWARE APPNOTE.TXT 6.3, sections 4.3.7, 4.3.12, 4.3.14–16, 4.5.3):
//   end of central directory  PK\5\6: entries (u16 @10), directory size (u32 @12),
//                             directory offset (u32 @16); found in the last 64 KiB + 22 bytes
//   zip64 locator / end       PK\6\7 just before it (offset of PK\6\6 @8), whose directory
//                             offset is u64 @48 and entry count u64 @32
//   directory entry           PK\1\2: flags @8, method @10, CRC-32 @16, sizes @20/@24,
//                             name/extra/comment lengths @28/@30/@32, local header offset @42,
//                             name @46; a zip64 extra field (id 1) holds, in this order, the
//                             uncompressed size, compressed size and offset that read 0xFFFFFFFF
//   local header              PK\3\4: name/extra lengths @26/@28, data at 30 + both
// Every offset and length is checked against the archive's size before it is used; a member
// that is encrypted, compressed otherwise than stored (0) or deflated (8), or whose inflated
// bytes differ from the directory's size or CRC-32 is refused, naming the archive and member.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace lmquant {

struct ZipEntry {
  std::string name;
  uint16_t flags = 0;   // general purpose bits; bit 0: encrypted
  uint16_t method = 0;  // 0 stored, 8 deflated
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
};

// Reads exactly `length` bytes at `offset` of an archive of `size` bytes (the caller checks the
// range first); throws when it cannot.
using ZipReadAt = std::function<std::string(uint64_t offset, uint64_t length)>;

// The central directory of an archive of `size` bytes read through `read`. Throws
// std::runtime_error saying what is damaged (no end record, a directory or entry outside the
// archive, a member's data outside it).
std::vector<ZipEntry> read_zip_directory(uint64_t size, const ZipReadAt& read);

// A zip file on disk: its directory read once; members extracted on request.
class ZipArchive {
 public:
  // Throws std::runtime_error naming `path` when it cannot be read or is not a sound zip.
  explicit ZipArchive(std::string path);

  const std::string& path() const { return path_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  // The entry named exactly `name`, or nullptr.
  const ZipEntry* find(const std::string& name) const;
  // Writes member `name`'s bytes to `dest` (never a partial file: a temporary file renamed once
  // its size and CRC-32 match the directory's). Throws naming the archive and member.
  void extract(const std::string& name, const std::string& dest) const;

 private:
  std::string path_;
  uint64_t size_ = 0;
  std::vector<ZipEntry> entries_;
};

}  // namespace lmquant
