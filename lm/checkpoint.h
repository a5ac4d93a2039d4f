// lmquant's checkpoint format (".lmq"), written atomically. Format 2 (written since lmquant 0.4):
//
//   bytes 0..7   magic "LMQCKPT2"
//   bytes 8..15  header length L, uint64 little-endian
//   next L bytes header, UTF-8 JSON:
//     { "format": 2, "kind": "model" | "quantized" | "packed",
//       "config": {vocab, emb, hidden, layers, dropout, tied},
//       "tokenizer": "word" | "spm:<sha256>", "vocab_hash": sha256 of the words joined by "\n",
//       "vocab": [words...] (may be absent), "meta": {...training state, quantization...},
//       "tensors": [{"name", "dtype": "float32"|"float16"|"int64"|"int16"|"uint8", "shape": [...],
//                    "offset", "bytes"}...],
//       "payload_bytes": P, "payload_sha256": sha256 of the payload }
//   next 32 bytes the SHA-256 of bytes 0 .. 16 + L − 1 (magic, length and header)
//   next P bytes payload: the tensors' raw little-endian bytes, back to back in header order.
//
// Format 1 (magic "LMQCKPT1", "format": 1, lmquant < 0.4) is the same without the header's
// SHA-256; it still loads.
//
// Reading is strict, so that no damage goes unnoticed: the magic; the sizes (a truncated file
// is named as such); the header's SHA-256 (format 2) before its JSON is parsed; the header's
// fields (an unknown field, or one of the wrong type, is an error naming it; "format" must agree
// with the magic); the tensors (unique names, known dtypes, shapes that describe exactly their
// bytes, laid back to back so that they cover the payload exactly); the payload's SHA-256; and
// that float tensors hold no NaN or Inf. What tensors a kind must hold is its reader's check
// (lm/model_io.h, quant/quantized_io.h): every expected tensor present with its dtype and shape,
// and no other.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lm/lstm_lm.h"

namespace lmquant {

struct Checkpoint {
  int format = 2;  // as read (1 or 2); files are written in format 2
  std::string kind = "model";
  LstmLmConfig config;
  std::string tokenizer = "word";
  std::string vocab_hash;
  std::vector<std::string> vocab;  // may be empty
  nlohmann::json meta = nlohmann::json::object();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;

  const torch::Tensor* find(const std::string& name) const;
};

inline constexpr char kCheckpointMagic[9] = "LMQCKPT2";    // format 2, written
inline constexpr char kCheckpointMagicV1[9] = "LMQCKPT1";  // format 1, read
// Whether `bytes` start with either magic.
bool is_checkpoint_magic(std::string_view bytes);

// `format` 2 (the default) or 1 (the previous format: for tests that an old file still loads).
void save_checkpoint(const std::string& path, const Checkpoint& ckpt, int format = 2);
Checkpoint read_checkpoint(const std::string& path);
// The same from the file's bytes; `path` names it in errors.
Checkpoint parse_checkpoint(std::string_view bytes, const std::string& path);

// Throws std::runtime_error naming `what` and the tensor when it holds NaN or Inf.
void check_finite(const std::string& what, const std::string& name, const torch::Tensor& t);

}  // namespace lmquant
