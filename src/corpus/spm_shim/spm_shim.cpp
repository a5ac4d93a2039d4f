// A C interface to Debian's sentencepiece, built as its own shared object and loaded by
// spm_tokenizer.cpp with dlmopen(LM_ID_NEWLM) into a separate link namespace.
//
// Why: Debian's libsentencepiece.so.0 bundles protobuf-lite and exports its symbols. Linked
// into the same process as LibTorch (which loads libprotobuf.so.32), the two protobuf copies
// interpose each other and the process crashes during static initialisation. In its own
// namespace sentencepiece sees only its own protobuf. Across the boundary pass only C types:
// the namespace has its own libstdc++ and malloc, so memory is freed on the side that made it.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <string>
#include <vector>

namespace sentencepiece::logging {
void SetMinLogLevel(int v);  // exported by libsentencepiece, not declared in its headers
}  // namespace sentencepiece::logging

namespace {

void set_error(char* err, size_t cap, const std::string& msg) {
  if (!err || cap == 0) return;
  const size_t n = std::min(cap - 1, msg.size());
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

struct Handle {
  sentencepiece::SentencePieceProcessor sp;
  std::vector<int> ids;
  std::string text;
};

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int lmq_spm_abi_version() { return 1; }

// Loads a serialized model (the bytes of a .model file). Null with `err` set on failure.
__attribute__((visibility("default"))) void* lmq_spm_load(const char* bytes, size_t size, char* err,
                                                          size_t err_cap) {
  try {
    auto* h = new Handle;
    const auto status = h->sp.LoadFromSerializedProto(std::string_view(bytes, size));
    if (!status.ok()) {
      set_error(err, err_cap, status.ToString());
      delete h;
      return nullptr;
    }
    return h;
  } catch (const std::exception& e) {
    set_error(err, err_cap, e.what());
    return nullptr;
  }
}

__attribute__((visibility("default"))) void lmq_spm_free(void* handle) {
  delete static_cast<Handle*>(handle);
}

// vocab size, or the ids of <unk>, <s>, </s>, <pad> (-1 when disabled), by `which` 0..4.
__attribute__((visibility("default"))) int lmq_spm_info(const void* handle, int which) {
  const auto& sp = static_cast<const Handle*>(handle)->sp;
  switch (which) {
    case 0:
      return sp.GetPieceSize();
    case 1:
      return sp.unk_id();
    case 2:
      return sp.bos_id();
    case 3:
      return sp.eos_id();
    case 4:
      return sp.pad_id();
  }
  return -1;
}

// The piece of `id`; valid until the next call on this handle. Null when out of range.
__attribute__((visibility("default"))) const char* lmq_spm_piece(void* handle, int id,
                                                                 size_t* size) {
  auto* h = static_cast<Handle*>(handle);
  if (id < 0 || id >= h->sp.GetPieceSize()) return nullptr;
  h->text = h->sp.IdToPiece(id);
  *size = h->text.size();
  return h->text.data();
}

// Encodes text into ids; the array stays valid until the next call on this handle.
// Returns the number of ids, or -1 with `err` set.
__attribute__((visibility("default"))) long lmq_spm_encode(void* handle, const char* text,
                                                           size_t size, const int** ids, char* err,
                                                           size_t err_cap) {
  auto* h = static_cast<Handle*>(handle);
  h->ids.clear();
  const auto status = h->sp.Encode(std::string_view(text, size), &h->ids);
  if (!status.ok()) {
    set_error(err, err_cap, status.ToString());
    return -1;
  }
  *ids = h->ids.data();
  return static_cast<long>(h->ids.size());
}

// Decodes ids into text; valid until the next call on this handle. -1 with `err` set.
__attribute__((visibility("default"))) long lmq_spm_decode(void* handle, const int* ids, size_t n,
                                                           const char** text, char* err,
                                                           size_t err_cap) {
  auto* h = static_cast<Handle*>(handle);
  h->text.clear();
  const auto status = h->sp.Decode(std::vector<int>(ids, ids + n), &h->text);
  if (!status.ok()) {
    set_error(err, err_cap, status.ToString());
    return -1;
  }
  *text = h->text.data();
  return static_cast<long>(h->text.size());
}

// Trains a model with sentencepiece's command-line style arguments ("--input=... --model_prefix=
// ..."); `seed` fixes sentencepiece's random generator. 0 on success, -1 with `err` set.
__attribute__((visibility("default"))) int lmq_spm_train(const char* args, unsigned seed, char* err,
                                                         size_t err_cap) {
  try {
    sentencepiece::SetRandomGeneratorSeed(seed);
    sentencepiece::logging::SetMinLogLevel(1);  // warnings and errors only
    const auto status = sentencepiece::SentencePieceTrainer::Train(std::string_view(args));
    if (!status.ok()) {
      set_error(err, err_cap, status.ToString());
      return -1;
    }
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_cap, e.what());
    return -1;
  }
}

}  // extern "C"
