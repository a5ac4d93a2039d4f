// lmquant's checkpoint format (".lmq"), written atomically:
//
//   bytes 0..7   magic "LMQCKPT1"
//   bytes 8..15  header length L, uint64 little-endian
//   next L bytes header, UTF-8 JSON:
//     { "format": 1, "kind": "model" | "quantized" | "packed",
//       "config": {vocab, emb, hidden, layers, dropout, tied},
//       "tokenizer": "word" | "spm:<sha256>", "vocab_hash": sha256 of the words joined by "\n",
//       "vocab": [words...] (may be absent), "meta": {...training state, quantization...},
//       "tensors": [{"name", "dtype": "float32"|"float16"|"int64"|"int16"|"uint8", "shape": [...],
//                    "offset", "bytes"}...],
//       "payload_bytes": P, "payload_sha256": sha256 of the payload }
//   next P bytes payload: the tensors' raw little-endian bytes, at their offsets.
//
// Reading checks the magic, the sizes (a truncated file is named as such), the payload hash (a
// corrupt one too), and that float tensors hold no NaN or Inf.
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
  std::string kind = "model";
  LstmLmConfig config;
  std::string tokenizer = "word";
  std::string vocab_hash;
  std::vector<std::string> vocab;  // may be empty
  nlohmann::json meta = nlohmann::json::object();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;

  const torch::Tensor* find(const std::string& name) const;
};

inline constexpr char kCheckpointMagic[9] = "LMQCKPT1";

void save_checkpoint(const std::string& path, const Checkpoint& ckpt);
Checkpoint read_checkpoint(const std::string& path);
// The same from the file's bytes; `path` names it in errors.
Checkpoint parse_checkpoint(std::string_view bytes, const std::string& path);

// Throws std::runtime_error naming `what` and the tensor when it holds NaN or Inf.
void check_finite(const std::string& what, const std::string& name, const torch::Tensor& t);

}  // namespace lmquant
