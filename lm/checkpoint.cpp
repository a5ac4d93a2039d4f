#include "lm/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

#include "util/atomic_file.h"
#include "util/json_check.h"
#include "util/sha256.h"

namespace lmquant {
namespace {

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat:
      return "float32";
    case torch::kHalf:
      return "float16";
    case torch::kLong:
      return "int64";
    case torch::kShort:
      return "int16";
    case torch::kByte:
      return "uint8";
    default:
      throw std::invalid_argument("checkpoint: unsupported tensor type");
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

bool is_checkpoint_magic(std::string_view bytes) {
  return bytes.size() >= 8 && (std::memcmp(bytes.data(), kCheckpointMagic, 8) == 0 ||
                               std::memcmp(bytes.data(), kCheckpointMagicV1, 8) == 0);
}

void save_checkpoint(const std::string& path, const Checkpoint& ckpt, int format) {
  if (format != 1 && format != 2)
    throw std::invalid_argument("checkpoint format must be 1 or 2, got " + std::to_string(format));
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
  nlohmann::json h = {{"format", format},
                      {"kind", ckpt.kind},
                      {"config", ckpt.config.to_json()},
                      {"tokenizer", ckpt.tokenizer},
                      {"vocab_hash", ckpt.vocab_hash},
                      {"meta", ckpt.meta},
                      {"tensors", tensors},
                      {"payload_bytes", payload.size()},
                      {"payload_sha256", sha256_bytes(payload)}};
  if (!ckpt.vocab.empty()) h["vocab"] = ckpt.vocab;
  std::string head(format == 2 ? kCheckpointMagic : kCheckpointMagicV1, 8);
  const std::string header = h.dump();
  const uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) head.push_back(static_cast<char>(len >> (8 * i)));
  head += header;
  if (format == 2) head += sha256_raw(head);
  write_file_atomic(path, [&](std::ostream& out) {
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    out.write(payload.data(), static_cast<std::streamsize>(payload.size()));
  });
}

Checkpoint read_checkpoint(const std::string& path) {
  return parse_checkpoint(read_file(path), path);
}

namespace {

// The header's fields and their JSON types; anything else is an error naming it.
void check_fields(const nlohmann::json& h) {
  using T = nlohmann::json::value_t;
  static const std::map<std::string, std::vector<T>> kFields = {
      {"format", {T::number_unsigned, T::number_integer}},
      {"kind", {T::string}},
      {"config", {T::object}},
      {"tokenizer", {T::string}},
      {"vocab_hash", {T::string}},
      {"vocab", {T::array}},
      {"meta", {T::object}},
      {"tensors", {T::array}},
      {"payload_bytes", {T::number_unsigned, T::number_integer}},
      {"payload_sha256", {T::string}}};
  if (!h.is_object()) throw std::runtime_error("corrupt checkpoint header (not a JSON object)");
  for (const auto& [key, value] : h.items()) {
    const auto it = kFields.find(key);
    if (it == kFields.end())
      throw std::runtime_error("corrupt checkpoint header: unknown field '" + key + "'");
    if (std::find(it->second.begin(), it->second.end(), value.type()) == it->second.end())
      throw std::runtime_error("corrupt checkpoint header: field '" + key + "' has the wrong type");
  }
  for (const char* key : {"format", "kind", "config", "tensors", "payload_bytes", "payload_sha256"})
    if (!h.contains(key))
      throw std::runtime_error(std::string("corrupt checkpoint header: no field '") + key + "'");
}

}  // namespace

Checkpoint parse_checkpoint(std::string_view bytes, const std::string& path) {
  if (bytes.size() < 16 || !is_checkpoint_magic(bytes))
    throw std::runtime_error(path +
                             " is not an lmquant checkpoint (no LMQCKPT2 or LMQCKPT1 magic)");
  const int format = std::memcmp(bytes.data(), kCheckpointMagic, 8) == 0 ? 2 : 1;
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i)
    len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  const uint64_t hash_bytes = format == 2 ? 32 : 0;
  if (len > bytes.size() - 16 || hash_bytes > bytes.size() - 16 - len)
    throw std::runtime_error(path + " is truncated: header of " + std::to_string(len) +
                             " bytes announced, " + std::to_string(bytes.size() - 16) + " present");
  if (format == 2 && sha256_raw(bytes.substr(0, 16 + len)) != bytes.substr(16 + len, 32))
    throw std::runtime_error(path + ": corrupt: the header's SHA-256 does not match");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(bytes.substr(16, static_cast<size_t>(len)));
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": corrupt checkpoint header (" + e.what() + ")");
  }
  Checkpoint c;
  c.format = format;
  check_json_numbers(h, path + ": corrupt checkpoint header");
  const size_t payload_at = 16 + len + hash_bytes;
  try {
    check_fields(h);
    if (h.at("format").get<int64_t>() != format)
      throw std::runtime_error("corrupt checkpoint header: format " + h.at("format").dump() +
                               " in a format-" + std::to_string(format) + " file");
    c.kind = h.at("kind").get<std::string>();
    if (c.kind != "model" && c.kind != "quantized" && c.kind != "packed")
      throw std::runtime_error("corrupt checkpoint header: unknown kind '" + c.kind + "'");
    c.config = LstmLmConfig::from_json(h.at("config"));
    c.tokenizer = h.value("tokenizer", "word");
    c.vocab_hash = h.value("vocab_hash", "");
    if (h.contains("vocab")) c.vocab = h["vocab"].get<std::vector<std::string>>();
    c.meta = h.value("meta", nlohmann::json::object());
    const uint64_t pbytes = json_count(h, "payload_bytes");
    if (bytes.size() - payload_at < pbytes)
      throw std::runtime_error("truncated: payload of " + std::to_string(pbytes) +
                               " bytes announced, " + std::to_string(bytes.size() - payload_at) +
                               " present");
    if (bytes.size() - payload_at > pbytes)
      throw std::runtime_error("corrupt: " + std::to_string(bytes.size() - payload_at - pbytes) +
                               " bytes after the payload");
    const std::string_view payload(bytes.data() + payload_at, pbytes);
    if (sha256_bytes(payload) != h.at("payload_sha256").get<std::string>())
      throw std::runtime_error("corrupt: the payload's SHA-256 does not match the header");
    std::set<std::string> names;
    uint64_t next = 0;  // tensors lie back to back
    for (const auto& t : h.at("tensors")) {
      if (!t.is_object() || t.size() != 5)
        throw std::runtime_error(
            "corrupt checkpoint header: a tensor entry is not {name, dtype, "
            "shape, offset, bytes}");
      const auto name = t.at("name").get<std::string>();
      if (!names.insert(name).second) throw std::runtime_error("tensor " + name + " appears twice");
      if (!t.at("shape").is_array())
        throw std::runtime_error("tensor " + name + " has no shape list");
      for (const auto& d : t.at("shape"))
        if (!d.is_number_integer()) throw std::runtime_error("tensor " + name + " has a bad shape");
      const auto shape = t.at("shape").get<std::vector<int64_t>>();
      const auto dtype = parse_dtype(t.at("dtype").get<std::string>(), path);
      const uint64_t off = json_count(t, "offset"), n = json_count(t, "bytes");
      if (off != next || off > pbytes || n > pbytes - off)
        throw std::runtime_error("tensor " + name + " does not lie where the payload has it");
      next = off + n;
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
      if (n > 0) std::memcpy(tensor.data_ptr(), payload.data() + off, n);  // (0: no data pointer)
      check_finite(path, name, tensor);
      c.tensors.emplace_back(name, tensor);
    }
    if (next != pbytes)
      throw std::runtime_error("corrupt: the tensors cover " + std::to_string(next) + " of the " +
                               std::to_string(pbytes) + " payload bytes");
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
