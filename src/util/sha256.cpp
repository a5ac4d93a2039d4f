#include "util/sha256.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <vector>

namespace lmquant {
namespace {

struct CtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_MD_CTX, CtxDeleter>;

Ctx new_ctx(const EVP_MD* md = EVP_sha256()) {
  Ctx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1)
    throw std::runtime_error("OpenSSL could not initialise a digest");
  return ctx;
}

std::string finish_raw(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx, md, &len) != 1) throw std::runtime_error("digest failed");
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string finish(EVP_MD_CTX* ctx) {
  const std::string md = finish_raw(ctx);
  const size_t len = md.size();
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < len; ++i) {
    const auto b = static_cast<unsigned char>(md[i]);
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

std::string digest_file(const std::string& path, const EVP_MD* md) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  Ctx ctx = new_ctx(md);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error("read error in " + path);
  return finish(ctx.get());
}

}  // namespace

std::string sha256_file(const std::string& path) { return digest_file(path, EVP_sha256()); }

std::string md5_file(const std::string& path) { return digest_file(path, EVP_md5()); }

std::string sha1_file(const std::string& path) { return digest_file(path, EVP_sha1()); }

std::string sha256_bytes(std::string_view bytes) {
  Ctx ctx = new_ctx();
  EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size());
  return finish(ctx.get());
}

std::string sha256_raw(std::string_view bytes) {
  Ctx ctx = new_ctx();
  EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size());
  return finish_raw(ctx.get());
}

}  // namespace lmquant
