#include "util/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "util/atomic_file.h"

namespace lmquant {
namespace {

constexpr uint32_t kEndRecord = 0x06054b50, kZip64Locator = 0x07064b50, kZip64End = 0x06064b50,
                   kDirEntry = 0x02014b50, kLocalHeader = 0x04034b50;
constexpr uint64_t kEndSize = 22, kMaxComment = 65535, kDirEntrySize = 46, kLocalSize = 30;

uint64_t le(const std::string& b, uint64_t at, int n) {
  if (at > b.size() || static_cast<uint64_t>(n) > b.size() - at)
    throw std::runtime_error("a zip record runs past its end");
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(b[at + i]);
  return v;
}

// [offset, offset + length) lies inside an archive of `size` bytes.
bool inside(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

}  // namespace

std::vector<ZipEntry> read_zip_directory(uint64_t size, const ZipReadAt& read) {
  if (size < kEndSize) throw std::runtime_error("too short for a zip archive");
  const uint64_t tail_len = std::min(size, kEndSize + kMaxComment);
  const uint64_t tail_at = size - tail_len;
  const std::string tail = read(tail_at, tail_len);
  uint64_t end = std::numeric_limits<uint64_t>::max();
  for (uint64_t at = tail_len - kEndSize + 1; at-- > 0;)
    if (le(tail, at, 4) == kEndRecord) {
      end = at;
      break;
    }
  if (end == std::numeric_limits<uint64_t>::max())
    throw std::runtime_error("no zip end-of-directory record");
  uint64_t count = le(tail, end + 10, 2), dir_size = le(tail, end + 12, 4),
           dir = le(tail, end + 16, 4);
  if (dir == 0xFFFFFFFF || count == 0xFFFF || dir_size == 0xFFFFFFFF) {
    // zip64: the locator sits just before the end record.
    if (end < 20 || le(tail, end - 20, 4) != kZip64Locator)
      throw std::runtime_error("a zip64 archive without its locator");
    const uint64_t z = le(tail, end - 20 + 8, 8);
    if (!inside(z, 56, size)) throw std::runtime_error("a zip64 end record outside the archive");
    const std::string rec = read(z, 56);
    if (le(rec, 0, 4) != kZip64End)
      throw std::runtime_error("a zip64 archive whose end record is missing");
    count = le(rec, 32, 8);
    dir_size = le(rec, 40, 8);
    dir = le(rec, 48, 8);
  }
  if (!inside(dir, dir_size, size))
    throw std::runtime_error("the zip directory lies outside the archive");
  if (count > dir_size / kDirEntrySize)
    throw std::runtime_error("the zip directory claims " + std::to_string(count) +
                             " entries that its " + std::to_string(dir_size) +
                             " bytes cannot hold");
  const std::string d = read(dir, dir_size);
  std::vector<ZipEntry> out;
  out.reserve(count);
  uint64_t at = 0;
  for (uint64_t e = 0; e < count; ++e) {
    if (le(d, at, 4) != kDirEntry) throw std::runtime_error("a damaged zip directory entry");
    ZipEntry z;
    z.flags = static_cast<uint16_t>(le(d, at + 8, 2));
    z.method = static_cast<uint16_t>(le(d, at + 10, 2));
    z.crc32 = static_cast<uint32_t>(le(d, at + 16, 4));
    z.compressed_size = le(d, at + 20, 4);
    z.uncompressed_size = le(d, at + 24, 4);
    const uint64_t name_len = le(d, at + 28, 2), extra_len = le(d, at + 30, 2),
                   comment_len = le(d, at + 32, 2);
    z.local_header_offset = le(d, at + 42, 4);
    if (!inside(at + kDirEntrySize, name_len + extra_len + comment_len, d.size()))
      throw std::runtime_error("a zip directory entry runs past the directory");
    z.name = d.substr(at + kDirEntrySize, name_len);
    const uint64_t extra_end = at + kDirEntrySize + name_len + extra_len;
    for (uint64_t x = at + kDirEntrySize + name_len; x + 4 <= extra_end;) {
      const uint64_t id = le(d, x, 2), len = le(d, x + 2, 2);
      if (x + 4 + len > extra_end)
        throw std::runtime_error("member " + z.name + ": a damaged extra field");
      if (id == 1) {  // zip64: the fields that read 0xFFFFFFFF, in this order
        uint64_t f = x + 4;
        auto take = [&](uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (f + 8 > x + 4 + len)
            throw std::runtime_error("member " + z.name + ": a short zip64 field");
          field = le(d, f, 8);
          f += 8;
        };
        take(z.uncompressed_size);
        take(z.compressed_size);
        take(z.local_header_offset);
      }
      x += 4 + len;
    }
    if (!inside(z.local_header_offset, kLocalSize, size) ||
        !inside(z.local_header_offset + kLocalSize, z.compressed_size, size))
      throw std::runtime_error("member " + z.name + " claims " + std::to_string(z.compressed_size) +
                               " bytes that the archive does not hold");
    out.push_back(std::move(z));
    at += kDirEntrySize + name_len + extra_len + comment_len;
  }
  return out;
}

ZipArchive::ZipArchive(std::string path) : path_(std::move(path)) {
  std::ifstream in(path_, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot read " + path_ + ": " + std::strerror(errno));
  size_ = static_cast<uint64_t>(in.tellg());
  auto read = [&](uint64_t offset, uint64_t length) {
    std::string b(length, '\0');
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(b.data(), static_cast<std::streamsize>(length)))
      throw std::runtime_error("read error");
    return b;
  };
  try {
    entries_ = read_zip_directory(size_, read);
  } catch (const std::exception& e) {
    throw std::runtime_error(path_ + ": not a readable zip archive (" + e.what() + ")");
  }
}

const ZipEntry* ZipArchive::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

void ZipArchive::extract(const std::string& name, const std::string& dest) const {
  const ZipEntry* e = find(name);
  const std::string where = path_ + ": member " + name;
  if (!e) {
    std::string names;
    for (size_t i = 0; i < entries_.size() && i < 8; ++i)
      names += (i ? ", " : "") + entries_[i].name;
    throw std::runtime_error(where + " is not in the archive (it holds " +
                             (names.empty() ? std::string("nothing") : names) +
                             (entries_.size() > 8 ? ", ..." : "") + ")");
  }
  if (e->flags & 1) throw std::runtime_error(where + " is encrypted");
  if (e->method != 0 && e->method != 8)
    throw std::runtime_error(where + " is compressed with method " + std::to_string(e->method) +
                             " (lmquant reads stored and deflated members)");
  std::ifstream in(path_, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path_ + ": " + std::strerror(errno));
  std::string local(kLocalSize, '\0');
  in.seekg(static_cast<std::streamoff>(e->local_header_offset));
  if (!in.read(local.data(), kLocalSize) || le(local, 0, 4) != kLocalHeader)
    throw std::runtime_error(where + ": a damaged local header");
  const uint64_t data_at =
      e->local_header_offset + kLocalSize + le(local, 26, 2) + le(local, 28, 2);
  if (!inside(data_at, e->compressed_size, size_))
    throw std::runtime_error(where + ": its data runs past the end of the archive");
  in.seekg(static_cast<std::streamoff>(data_at));

  write_file_atomic(dest, [&](std::ostream& out) {
    std::vector<char> src(1 << 20), dst(1 << 20);
    uint64_t left = e->compressed_size, written = 0;
    uLong crc = crc32(0L, Z_NULL, 0);
    auto emit = [&](const char* p, size_t n) {
      if (n > e->uncompressed_size - written)
        throw std::runtime_error(where + " inflates past its " +
                                 std::to_string(e->uncompressed_size) + " bytes");
      crc = crc32(crc, reinterpret_cast<const Bytef*>(p), static_cast<uInt>(n));
      out.write(p, static_cast<std::streamsize>(n));
      written += n;
    };
    auto next = [&]() {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, src.size()));
      if (!in.read(src.data(), static_cast<std::streamsize>(n)))
        throw std::runtime_error(where + ": read error");
      left -= n;
      return n;
    };
    if (e->method == 0) {
      while (left > 0) {
        const size_t n = next();
        emit(src.data(), n);
      }
    } else {
      z_stream z{};
      if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
        throw std::runtime_error("zlib: inflateInit2 failed");
      struct End {
        z_stream* z;
        ~End() { inflateEnd(z); }
      } end{&z};
      int rc = Z_OK;
      while (rc != Z_STREAM_END) {
        if (z.avail_in == 0) {
          if (left == 0) throw std::runtime_error(where + ": the deflate stream ends early");
          z.avail_in = static_cast<uInt>(next());
          z.next_in = reinterpret_cast<Bytef*>(src.data());
        }
        z.next_out = reinterpret_cast<Bytef*>(dst.data());
        z.avail_out = static_cast<uInt>(dst.size());
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END)
          throw std::runtime_error(where + ": damaged deflate data (zlib: " +
                                   (z.msg ? z.msg : std::to_string(rc)) + ")");
        emit(dst.data(), dst.size() - z.avail_out);
      }
    }
    if (written != e->uncompressed_size)
      throw std::runtime_error(where + " has " + std::to_string(written) +
                               " bytes, the directory says " +
                               std::to_string(e->uncompressed_size));
    if (crc != e->crc32) {
      char got[9], want[9];
      std::snprintf(got, sizeof got, "%08lx", static_cast<unsigned long>(crc));
      std::snprintf(want, sizeof want, "%08lx", static_cast<unsigned long>(e->crc32));
      throw std::runtime_error(where + " has CRC-32 " + got + ", the directory says " + want);
    }
  });
}

}  // namespace lmquant
