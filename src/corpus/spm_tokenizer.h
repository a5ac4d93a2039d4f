// A sentencepiece subword tokenizer (unigram or BPE) through Debian's libsentencepiece.
//
// Debian's libsentencepiece.so.0 bundles protobuf-lite and exports its symbols; linked next to
// LibTorch (libprotobuf.so.32) the process crashes during static initialisation. lmquant never
// links it: spm_shim/spm_shim.cpp wraps it in a small C interface (liblmquant_spm.so) that is
// loaded with dlmopen(LM_ID_NEWLM), i.e. in its own link namespace, on first use. The shim is
// looked up at $LMQUANT_SPM_SHIM, then the install location, then the build tree.
//
// How WikiText-2 is treated (train_spm): each line is one training sentence; the corpus's literal
// "<unk>" is a user-defined piece (always one piece, never split), so sentencepiece's own unknown
// piece is renamed "<spm-unk>" (with character coverage 1.0 it only appears for characters never
// seen in training); "@-@", "@,@", "@.@" are ordinary text that the model learns as pieces. In a
// corpus stream every line ends with the end-of-sentence piece "</s>" (the word model's <eos>).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "corpus/vocab.h"

namespace lmquant {

class SpmTokenizer {
 public:
  // Loads a .model file; throws std::runtime_error naming the file when it is missing or not a
  // sentencepiece model, or when the shim cannot be loaded.
  static SpmTokenizer load(const std::string& path);

  // Ids of one line of text (no end-of-sentence piece). Thread-safe.
  std::vector<int64_t> encode(std::string_view text) const;
  std::vector<std::string> encode_pieces(std::string_view text) const;
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t size() const { return vocab_.size(); }
  int64_t eos_id() const { return eos_; }
  int64_t unk_id() const { return unk_; }
  // The pieces in id order (the language model's vocabulary).
  const Vocab& vocab() const { return vocab_; }
  const std::string& path() const { return path_; }
  const std::string& sha256() const { return sha256_; }
  // What a checkpoint records: "spm:<sha256 of the .model file>".
  std::string id() const { return "spm:" + sha256_; }

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  Vocab vocab_;
  std::string path_, sha256_;
  int64_t eos_ = -1, unk_ = -1;
};

struct SpmTrainOptions {
  std::string type = "unigram";  // unigram or bpe
  int vocab_size = 8000;
  unsigned seed = 1;
  int threads = 1;  // the same inputs, seed and threads give the same model file
  double character_coverage = 1.0;
};

// Trains a model on `input` (a text file, one sentence per line) and writes it to `out` atomically
// (a .model file). Throws on bad options (naming the valid values) or a failed training.
// Deterministic: the same input, options and `out` give the same bytes (the file records the
// input path and `out`, as sentencepiece does).
void train_spm(const std::string& input, const std::string& out, const SpmTrainOptions& options);

// The path of the shim the process uses (or would use); empty when none is found.
std::string spm_shim_path();

}  // namespace lmquant
