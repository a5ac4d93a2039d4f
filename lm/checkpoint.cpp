#include "lm/checkpoint.h"

#include <cstring>
#include <stdexcept>

#include "util/atomic_file.h"
#include "util/sha256.h"

namespace lmquant {
namespace {

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat: return "float32";
    case torch::kHalf: return "float16";
    case torch::kLong: return "int64";
    case torch::kShort: return "int16";
    case torch::kByte: return "uint8";
    default: throw std::invalid_argument("checkpoint: unsupported tensor type");
  }
}

torch::ScalarType parse_dtype(const std::string& s, const std::string& path) {
  if (s == "float32") return torch::kFloat;
  if (s == "float16") return torch::kHalf;
  if (s == "int64") return torch::kLong;
  if (s == "int16") return torch::kShort;
  if (s == "uint8") return torch::kByte;
  throw std::runtime_error(path + ": unknown tensor dtype '" + s + "' (corrupt checkpoint?)");
}

}  // namespace

const torch::Tensor* Checkpoint::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

void check_finite(const std::string& what, const std::string& name, const torch::Tensor& t) {
  if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>())
    throw std::runtime_error(what + ": tensor " + name +
                             " holds NaN or Inf values; the model is unusable (retrain or "
                             "restore an earlier checkpoint)");
}

void save_checkpoint(const std::string& path, const Checkpoint& ckpt) {
  std::string payload;
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& [name, t0] : ckpt.tensors) {
    auto t = t0.detach().to(torch::kCPU).contiguous();
    const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
    tensors.push_back({{"name", name},
                       {"dtype", dtype_name(t.scalar_type())},
                       {"shape", t.sizes().vec()},
                       {"offset", payload.size()},
                       {"bytes", bytes}});
    payload.append(static_cast<const char*>(t.data_ptr()), bytes);
  }
  nlohmann::json h = {{"format", 1},
                      {"kind", ckpt.kind},
                      {"config", ckpt.config.to_json()},
                      {"tokenizer", ckpt.tokenizer},
                      {"vocab_hash", ckpt.vocab_hash},
                      {"meta", ckpt.meta},
                      {"tensors", tensors},
                      {"payload_bytes", payload.size()},
                      {"payload_sha256", sha256_bytes(payload)}};
  if (!ckpt.vocab.empty()) h["vocab"] = ckpt.vocab;
  const std::string header = h.dump();
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(kCheckpointMagic, 8);
    uint64_t len = header.size();
    unsigned char le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(len >> (8 * i));
    out.write(reinterpret_cast<const char*>(le), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(payload.data(), static_cast<std::streamsize>(payload.size()));
  });
}

Checkpoint read_checkpoint(const std::string& path) { return parse_checkpoint(read_file(path), path); }

Checkpoint parse_checkpoint(std::string_view bytes, const std::string& path) {
  if (bytes.size() < 16 || std::memcmp(bytes.data(), kCheckpointMagic, 8) != 0)
    throw std::runtime_error(path + " is not an lmquant checkpoint (no LMQCKPT1 magic)");
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i) len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  if (len > bytes.size() - 16)
    throw std::runtime_error(path + " is truncated: header of " + std::to_string(len) +
                             " bytes announced, " + std::to_string(bytes.size() - 16) + " present");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(bytes.substr(16, static_cast<size_t>(len)));
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": corrupt checkpoint header (" + e.what() + ")");
  }
  Checkpoint c;
  const size_t payload_at = 16 + len;
  try {
    c.kind = h.at("kind").get<std::string>();
    c.config = LstmLmConfig::from_json(h.at("config"));
    c.tokenizer = h.value("tokenizer", "word");
    c.vocab_hash = h.value("vocab_hash", "");
    if (h.contains("vocab")) c.vocab = h["vocab"].get<std::vector<std::string>>();
    c.meta = h.value("meta", nlohmann::json::object());
    const uint64_t pbytes = h.at("payload_bytes").get<uint64_t>();
    if (bytes.size() - payload_at < pbytes)
      throw std::runtime_error("truncated: payload of " + std::to_string(pbytes) + " bytes announced, " +
                               std::to_string(bytes.size() - payload_at) + " present");
    const std::string_view payload(bytes.data() + payload_at, pbytes);
    if (sha256_bytes(payload) != h.at("payload_sha256").get<std::string>())
      throw std::runtime_error("corrupt: the payload's SHA-256 does not match the header");
    for (const auto& t : h.at("tensors")) {
      const auto name = t.at("name").get<std::string>();
      const auto shape = t.at("shape").get<std::vector<int64_t>>();
      const auto dtype = parse_dtype(t.at("dtype").get<std::string>(), path);
      const uint64_t off = t.at("offset").get<uint64_t>(), n = t.at("bytes").get<uint64_t>();
      if (off > pbytes || n > pbytes - off)
        throw std::runtime_error("tensor " + name + " lies outside the payload");
      // The shape must describe exactly n bytes: checked before allocating anything.
      uint64_t elements = 1;
      for (int64_t d : shape) {
        if (d < 0 || (d > 0 && elements > pbytes / static_cast<uint64_t>(d)))
          throw std::runtime_error("tensor " + name + " has an impossible shape");
        elements *= static_cast<uint64_t>(d);
      }
      if (n != elements * c10::elementSize(dtype))
        throw std::runtime_error("tensor " + name + ": shape and byte count disagree");
      auto tensor = torch::empty(shape, dtype);
      std::memcpy(tensor.data_ptr(), payload.data() + off, n);
      check_finite(path, name, tensor);
      c.tensors.emplace_back(name, tensor);
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": corrupt checkpoint header (" + e.what() + ")");
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": bad model config (" + e.what() + ")");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) throw;
    throw std::runtime_error(path + ": " + msg);
  }
  return c;
}

}  // namespace lmquant
