// What torch.save wrote, read without Python: the zip archive (PyTorch ≥ 1.6; `archive/data.pkl`,
// `archive/data/<key>` storages, `archive/byteorder`) and its pickle, run by a small pickle machine
// that knows no Python class. Every object of a class it does not know (a model's own
// `model.RNNModel`, `torch.nn.modules.rnn.LSTM`, `collections.OrderedDict`'s subclasses...) is kept
// as a plain object: its class name, the arguments it was made from, and the state BUILD gave it
// (for an nn.Module, the dict holding `_parameters`, `_buffers` and `_modules`). It knows:
//
//   collections.OrderedDict        a dict (a state_dict; its `_metadata` attribute is kept aside)
//   torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, meta])
//                                  a tensor: a strided view of a storage, checked to lie inside it
//   torch._utils._rebuild_parameter(data, requires_grad, hooks[, state])   the tensor `data`
//   torch._tensor._rebuild_from_type_v2(func, type, args, state)           func(*args)
//   torch.jit._pickle.restore_type_tag(value, type)   value (what LibTorch's pickle_save writes)
//   persistent id ('storage', torch.<Type>Storage, key, location, numel)   data/<key>, numel
//                                  elements of <Type> (Float, Double, Half, BFloat16, Long, Int,
//                                  Short, Char, Byte, Bool), read once however often it is named
//
// Opcodes: protocols 2 to 5 as torch.save writes them (binary; GLOBAL is the only text opcode
// read). Nothing is trusted: each length is checked against the bytes left before anything is
// allocated, memo indices against the memo, a tensor's extent against its storage, a storage's
// size against its record. What a file may cost is bounded by its size. Values live in an arena
// (no reference counting: a pickle may build cycles, and deep nesting frees without recursion);
// walking them is the caller's business, with a depth bound.
//
// Source: the pickle opcodes of CPython's Lib/pickletools.py; torch/serialization.py (_save,
// _load) and torch/_utils.py for what torch.save writes.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lmquant {

struct PyValue {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kBytes,
    kTuple,
    kList,
    kDict,
    kSet,
    kGlobal,
    kObject,
    kTensor,
    kStorage
  };
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  // kString, kBytes; kGlobal and kObject: the class "module.name"; a kDict made by
  // collections.OrderedDict: "collections.OrderedDict".
  std::string text;
  // kTuple, kList, kSet: the items; kObject: the arguments it was made from (and the items
  // APPENDS gave it).
  std::vector<PyValue*> items;
  // kDict: the entries in insertion order; kObject: the entries SETITEMS gave it.
  std::vector<std::pair<PyValue*, PyValue*>> entries;
  std::unordered_map<std::string, size_t> string_keys;  // entries' index by str key
  PyValue* state = nullptr;  // kObject (BUILD), kDict (an OrderedDict's attributes)
  torch::Tensor tensor;      // kTensor; kStorage: the storage as a 1-D tensor

  // kDict, or a kObject's SETITEMS entries: the value under a str key, or nullptr.
  const PyValue* get(const std::string& key) const;
  // A short description for errors: "a dict", "a model.RNNModel object", "a tensor [3, 4]".
  std::string describe() const;
};

class TorchPickle {
 public:
  // Reads a torch.save archive; `path` names it in errors. Throws std::runtime_error naming what
  // is wrong (with the re-save line for a pre-1.6 file, and TorchScript archives named as such).
  TorchPickle(const std::string& bytes, const std::string& path);
  TorchPickle(const TorchPickle&) = delete;
  TorchPickle& operator=(const TorchPickle&) = delete;

  const PyValue& root() const { return *root_; }

 private:
  std::vector<std::unique_ptr<PyValue>> arena_;
  PyValue* root_ = nullptr;
};

// Runs a bare pickle (no archive) whose persistent ids are resolved by `storage(pid)`; for tests
// and the fuzzer. Returns the root, owned by `arena`.
PyValue* run_pickle(const std::string& pickle, std::vector<std::unique_ptr<PyValue>>& arena,
                    const std::function<PyValue*(const PyValue& pid)>& storage);

}  // namespace lmquant
