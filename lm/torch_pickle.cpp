#include "lm/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>

#include "util/zip_archive.h"

namespace lmquant {
namespace {

using Kind = PyValue::Kind;

// LibTorch's MemoryReadAdapter copies whatever range the zip reader asks for, even past the end
// of the buffer (a fuzz finding: a zip directory pointing outside the file read freed memory).
// This one returns short reads there, which the zip reader reports as a damaged archive.
class BoundedReader final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReader(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* = "") const override {
    if (pos >= bytes_.size()) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, bytes_.size() - pos));
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;
};

// The zip's central directory, checked before LibTorch's reader allocates any record: every entry
// stored (torch.save never compresses), its size what it claims and its bytes inside the file.
// (The reader allocates a record's claimed uncompressed size before reading it.)
void check_zip_directory(const std::string& b) {
  const auto read = [&](uint64_t offset, uint64_t length) { return b.substr(offset, length); };
  for (const ZipEntry& z : read_zip_directory(b.size(), read)) {
    const std::string name = z.name.substr(0, 200);
    if (z.method != 0)
      throw std::runtime_error("record " + name +
                               " is compressed (torch.save writes every record stored; re-save "
                               "the file with torch.save)");
    if (z.compressed_size != z.uncompressed_size)
      throw std::runtime_error("record " + name + " claims " + std::to_string(z.uncompressed_size) +
                               " bytes that the file does not hold");
  }
}

int64_t as_int(const PyValue* v, const char* what) {
  if (!v || v->kind != Kind::kInt)
    throw std::runtime_error(std::string(what) + " is " + (v ? v->describe() : "missing") +
                             ", not an integer");
  return v->integer;
}

std::vector<int64_t> as_ints(const PyValue* v, const char* what) {
  if (!v || v->kind != Kind::kTuple)
    throw std::runtime_error(std::string(what) + " is not a tuple of integers");
  std::vector<int64_t> out;
  for (const PyValue* x : v->items) out.push_back(as_int(x, what));
  return out;
}

torch::ScalarType storage_dtype(const std::string& cls) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"torch.FloatStorage", torch::kFloat}, {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},   {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},   {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort}, {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},   {"torch.BoolStorage", torch::kBool}};
  auto it = types.find(cls);
  if (it == types.end())
    throw std::runtime_error("a storage of type " + cls +
                             " (lmquant reads Float, Double, Half, BFloat16, Long, Int, Short, "
                             "Char, Byte and Bool storages)");
  return it->second;
}

class PickleMachine {
 public:
  PickleMachine(const std::string& p, std::vector<std::unique_ptr<PyValue>>& arena,
                const std::function<PyValue*(const PyValue&)>& storage)
      : p_(p), arena_(arena), storage_(storage) {}

  PyValue* run() {
    while (true) {
      const unsigned char op = byte();
      switch (op) {
        case 0x80: {  // PROTO
          const int v = byte();
          if (v < 2 || v > 5)
            throw std::runtime_error("pickle protocol " + std::to_string(v) +
                                     " (torch.save writes protocols 2 to 5)");
          break;
        }
        case 0x95:
          skip(8);
          break;   // FRAME
        case '.':  // STOP
          if (stack_.empty()) throw std::runtime_error("the pickle stops with an empty stack");
          return stack_.back();
        case '(':
          marks_.push_back(stack_.size());
          break;
        case '0':
          pop();
          break;
        case '1':
          from_mark();
          break;
        case '2':
          push(top());
          break;
        case 'N':
          push(make(Kind::kNone));
          break;
        case 0x88:
        case 0x89: {
          PyValue* v = make(Kind::kBool);
          v->boolean = op == 0x88;
          push(v);
          break;
        }
        case 'J':
          push_int(static_cast<int32_t>(le_int(4)));
          break;
        case 'K':
          push_int(le_int(1));
          break;
        case 'M':
          push_int(le_int(2));
          break;
        case 0x8a: {  // LONG1: n bytes of two's complement
          const size_t n = byte();
          if (n > 8)
            throw std::runtime_error("a pickled integer of " + std::to_string(n) +
                                     " bytes (at most 8 are read)");
          uint64_t v = le_int(n);
          if (n > 0 && n < 8 && (v >> (8 * n - 1) & 1)) v |= ~uint64_t{0} << (8 * n);
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'G': {  // BINFLOAT: big-endian double
          const std::string b = take(8);
          uint64_t bits = 0;
          for (char c : b) bits = bits << 8 | static_cast<unsigned char>(c);
          PyValue* v = make(Kind::kFloat);
          std::memcpy(&v->real, &bits, 8);
          push(v);
          break;
        }
        case 'X':
          push_text(Kind::kString, le_int(4));
          break;
        case 0x8c:
          push_text(Kind::kString, le_int(1));
          break;
        case 0x8d:
          push_text(Kind::kString, le_int(8));
          break;
        case 'T':
          push_text(Kind::kString, le_int(4));
          break;
        case 'U':
          push_text(Kind::kString, le_int(1));
          break;
        case 'B':
          push_text(Kind::kBytes, le_int(4));
          break;
        case 'C':
          push_text(Kind::kBytes, le_int(1));
          break;
        case 0x8e:
        case 0x96:
          push_text(Kind::kBytes, le_int(8));
          break;
        case 'c': {  // GLOBAL: "module\nname\n"
          std::string module = line(), name = line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          PyValue* name = pop();
          PyValue* module = pop();
          if (module->kind != Kind::kString || name->kind != Kind::kString)
            throw std::runtime_error("STACK_GLOBAL of a non-string");
          push(global(module->text, name->text));
          break;
        }
        case '}':
          push(make(Kind::kDict));
          break;
        case ']':
          push(make(Kind::kList));
          break;
        case ')':
          push(make(Kind::kTuple));
          break;
        case 0x8f:
          push(make(Kind::kSet));
          break;
        case 'l':
        case 't':
        case 0x91: {  // LIST, TUPLE, FROZENSET from the mark
          PyValue* v = make(op == 'l' ? Kind::kList : op == 't' ? Kind::kTuple : Kind::kSet);
          v->items = from_mark();
          push(v);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          PyValue* v = make(Kind::kTuple);
          v->items.resize(op - 0x84);
          for (size_t i = v->items.size(); i-- > 0;) v->items[i] = pop();
          push(v);
          break;
        }
        case 'd': {  // DICT from the mark
          PyValue* v = make(Kind::kDict);
          set_items(*v, from_mark());
          push(v);
          break;
        }
        case 'a': {
          PyValue* x = pop();
          append(*top(), {x});
          break;
        }
        case 'e': {
          auto xs = from_mark();
          append(*top(), xs);
          break;
        }
        case 0x90: {  // ADDITEMS
          auto xs = from_mark();
          if (top()->kind != Kind::kSet) throw std::runtime_error("ADDITEMS to a non-set");
          append(*top(), xs);
          break;
        }
        case 's': {
          PyValue* v = pop();
          PyValue* k = pop();
          set_items(*top(), {k, v});
          break;
        }
        case 'u': {
          auto kv = from_mark();
          set_items(*top(), kv);
          break;
        }
        case 'q':
          put(le_int(1));
          break;
        case 'r':
          put(le_int(4));
          break;
        case 0x94:
          put(memo_.size());
          break;
        case 'h':
          get(le_int(1));
          break;
        case 'j':
          get(le_int(4));
          break;
        case 'Q': {  // BINPERSID
          PyValue* pid = pop();
          push(storage_(*pid));
          break;
        }
        case 'R': {  // REDUCE
          PyValue* args = pop();
          PyValue* f = pop();
          push(call(*f, *args));
          break;
        }
        case 0x81: {  // NEWOBJ
          PyValue* args = pop();
          PyValue* cls = pop();
          push(call(*cls, *args));
          break;
        }
        case 0x92: {  // NEWOBJ_EX (keyword arguments dropped: no class lmquant builds takes any)
          pop();
          PyValue* args = pop();
          PyValue* cls = pop();
          push(call(*cls, *args));
          break;
        }
        case 'b': {  // BUILD
          PyValue* state = pop();
          PyValue* obj = top();
          if (obj->kind == Kind::kObject || obj->kind == Kind::kDict)
            obj->state = state;
          else if (obj->kind != Kind::kTensor)  // a Parameter's state: nothing lmquant reads
            throw std::runtime_error("BUILD of " + obj->describe());
          break;
        }
        default:
          throw std::runtime_error(
              "pickle opcode 0x" + hex(op) + " at byte " + std::to_string(pos_ - 1) +
              " (lmquant reads the binary protocols 2 to 5 torch.save writes)");
      }
    }
  }

 private:
  static std::string hex(unsigned v) {
    const char* d = "0123456789abcdef";
    return std::string{d[v >> 4 & 15], d[v & 15]};
  }
  void need(uint64_t n) {
    if (n > p_.size() - pos_)
      throw std::runtime_error("pickle argument of " + std::to_string(n) + " bytes at byte " +
                               std::to_string(pos_) + " runs past the end of data.pkl");
  }
  unsigned char byte() {
    need(1);
    return static_cast<unsigned char>(p_[pos_++]);
  }
  uint64_t le_int(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = v << 8 | static_cast<unsigned char>(p_[pos_ + i]);
    pos_ += n;
    return v;
  }
  void skip(uint64_t n) {
    need(n);
    pos_ += n;
  }
  std::string take(uint64_t n) {
    need(n);
    std::string s = p_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string line() {
    const size_t nl = p_.find('\n', pos_);
    if (nl == std::string::npos) throw std::runtime_error("unterminated pickle text argument");
    std::string s = p_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return s;
  }
  PyValue* make(Kind k) {
    arena_.push_back(std::make_unique<PyValue>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }
  void push(PyValue* v) { stack_.push_back(v); }
  void push_int(int64_t i) {
    PyValue* v = make(Kind::kInt);
    v->integer = i;
    push(v);
  }
  void push_text(Kind k, uint64_t n) {
    PyValue* v = make(k);
    v->text = take(n);
    push(v);
  }
  PyValue* top() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back()))
      throw std::runtime_error("pickle stack underflow at byte " + std::to_string(pos_));
    return stack_.back();
  }
  PyValue* pop() {
    PyValue* v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<PyValue*> from_mark() {
    if (marks_.empty())
      throw std::runtime_error("pickle MARK missing at byte " + std::to_string(pos_));
    std::vector<PyValue*> out(stack_.begin() + marks_.back(), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return out;
  }
  void put(uint64_t i) {
    // A pickler numbers its memo 0, 1, 2...: an index far beyond the entries so far is damage.
    if (i > memo_.size() + 1024)
      throw std::runtime_error("pickle memo index " + std::to_string(i) + " at byte " +
                               std::to_string(pos_) + " skips past the memo's " +
                               std::to_string(memo_.size()) + " entries");
    memo_[i] = top();
  }
  void get(uint64_t i) {
    auto it = memo_.find(i);
    if (it == memo_.end())
      throw std::runtime_error("pickle memo index " + std::to_string(i) + " read before written");
    push(it->second);
  }
  void append(PyValue& to, const std::vector<PyValue*>& xs) {
    if (to.kind != Kind::kList && to.kind != Kind::kSet && to.kind != Kind::kObject)
      throw std::runtime_error("APPEND to " + to.describe());
    to.items.insert(to.items.end(), xs.begin(), xs.end());
  }
  void set_items(PyValue& to, const std::vector<PyValue*>& kv) {
    if (to.kind != Kind::kDict && to.kind != Kind::kObject)
      throw std::runtime_error("SETITEM on " + to.describe());
    if (kv.size() % 2) throw std::runtime_error("SETITEMS with an odd number of values");
    for (size_t i = 0; i < kv.size(); i += 2) {
      if (kv[i]->kind == Kind::kString) {
        auto [it, fresh] = to.string_keys.emplace(kv[i]->text, to.entries.size());
        if (!fresh) {
          to.entries[it->second].second = kv[i + 1];
          continue;
        }
      }
      to.entries.emplace_back(kv[i], kv[i + 1]);
    }
  }
  PyValue* global(std::string module, const std::string& name) {
    if (module == "__builtin__") module = "builtins";
    PyValue* v = make(Kind::kGlobal);
    v->text = module + "." + name;
    return v;
  }
  PyValue* call(const PyValue& f, const PyValue& args) {
    if (f.kind != Kind::kGlobal) throw std::runtime_error("a call of " + f.describe());
    if (args.kind != Kind::kTuple)
      throw std::runtime_error("a call of " + f.text + " with " + args.describe());
    const auto& a = args.items;
    auto arg = [&](size_t i) -> const PyValue* { return i < a.size() ? a[i] : nullptr; };
    if (f.text == "collections.OrderedDict") {
      PyValue* d = make(Kind::kDict);
      d->text = f.text;
      if (!a.empty()) {  // OrderedDict([(k, v), ...])
        if (a[0]->kind != Kind::kList) throw std::runtime_error("OrderedDict of a non-list");
        for (const PyValue* kv : a[0]->items) {
          if (kv->kind != Kind::kTuple || kv->items.size() != 2)
            throw std::runtime_error("OrderedDict item not a pair");
          set_items(*d, kv->items);
        }
      }
      return d;
    }
    if (f.text == "torch._utils._rebuild_tensor_v2" || f.text == "torch._utils._rebuild_tensor")
      return tensor(arg(0), as_int(arg(1), "a tensor's offset"), as_ints(arg(2), "a tensor's size"),
                    as_ints(arg(3), "a tensor's stride"));
    if (f.text == "torch._utils._rebuild_parameter" ||
        f.text == "torch._utils._rebuild_parameter_with_state") {
      if (!arg(0) || arg(0)->kind != Kind::kTensor)
        throw std::runtime_error("a Parameter of " + (arg(0) ? arg(0)->describe() : "nothing"));
      return a[0];
    }
    if (f.text == "torch.jit._pickle.restore_type_tag") {  // LibTorch's typed containers
      if (a.empty()) throw std::runtime_error("restore_type_tag without its value");
      return a[0];
    }
    if (f.text == "torch._tensor._rebuild_from_type_v2") {  // (func, type, args, state)
      if (a.size() < 3) throw std::runtime_error("_rebuild_from_type_v2 without its arguments");
      return call(*a[0], *a[2]);
    }
    if (f.text.rfind("torch._utils._rebuild_", 0) == 0)
      throw std::runtime_error("a tensor rebuilt by " + f.text +
                               " (quantized, sparse or other special tensors are not read; save "
                               "the float model)");
    PyValue* obj = make(Kind::kObject);
    obj->text = f.text;
    obj->items = a;
    return obj;
  }
  PyValue* tensor(const PyValue* storage, int64_t offset, const std::vector<int64_t>& size,
                  const std::vector<int64_t>& stride) {
    if (!storage || storage->kind != Kind::kStorage)
      throw std::runtime_error("a tensor of " + (storage ? storage->describe() : "nothing"));
    const int64_t n = storage->tensor.numel();
    if (size.size() != stride.size() || size.size() > 16)
      throw std::runtime_error("a tensor whose size and stride disagree");
    // The last element's index, each step checked not to pass the storage (no overflow).
    int64_t last = offset, count = 1;
    if (offset < 0 || offset > n)
      throw std::runtime_error("a tensor's offset lies past its storage");
    for (size_t d = 0; d < size.size(); ++d) {
      if (size[d] < 0 || stride[d] < 0) throw std::runtime_error("a tensor of negative size");
      if (size[d] == 0) count = 0;
    }
    if (count) {
      for (size_t d = 0; d < size.size(); ++d) {
        if (size[d] > 1 && stride[d] > (n - last) / (size[d] - 1))
          throw std::runtime_error("a tensor of size " + c10::str(c10::IntArrayRef(size)) +
                                   " reaches past its storage of " + std::to_string(n));
        last += (size[d] - 1) * stride[d];
      }
      if (last >= n)
        throw std::runtime_error("a tensor of size " + c10::str(c10::IntArrayRef(size)) +
                                 " reaches past its storage of " + std::to_string(n));
    }
    PyValue* v = make(Kind::kTensor);
    v->tensor = storage->tensor.as_strided(size, stride, offset);
    return v;
  }

  const std::string& p_;
  size_t pos_ = 0;
  std::vector<std::unique_ptr<PyValue>>& arena_;
  const std::function<PyValue*(const PyValue&)>& storage_;
  std::vector<PyValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyValue*> memo_;
};

bool starts_with(const std::string& b, const char* s, size_t n) {
  return b.size() >= n && std::memcmp(b.data(), s, n) == 0;
}

}  // namespace

const PyValue* PyValue::get(const std::string& key) const {
  auto it = string_keys.find(key);
  return it == string_keys.end() ? nullptr : entries[it->second].second;
}

std::string PyValue::describe() const {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "a bool";
    case Kind::kInt:
      return "an int";
    case Kind::kFloat:
      return "a float";
    case Kind::kString:
      return "a str";
    case Kind::kBytes:
      return "bytes";
    case Kind::kTuple:
      return "a tuple";
    case Kind::kList:
      return "a list";
    case Kind::kDict:
      return "a dict";
    case Kind::kSet:
      return "a set";
    case Kind::kGlobal:  // a class name is the file's text: at most 120 characters of it
      return "the class " + text.substr(0, 120);
    case Kind::kObject:
      return "a " + text.substr(0, 120) + " object";
    case Kind::kTensor:
      return "a tensor " + c10::str(tensor.sizes());
    case Kind::kStorage:
      return "a storage";
  }
  return "?";
}

PyValue* run_pickle(const std::string& pickle, std::vector<std::unique_ptr<PyValue>>& arena,
                    const std::function<PyValue*(const PyValue& pid)>& storage) {
  return PickleMachine(pickle, arena, storage).run();
}

TorchPickle::TorchPickle(const std::string& bytes, const std::string& path) {
  // torch.save before 1.6 (and _use_new_zipfile_serialization=False) wrote a bare pickle that
  // begins with protocol 2 and the magic number 0x1950a86a20f9469cfc6c.
  if (starts_with(bytes, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 14))
    throw std::runtime_error(path +
                             ": a PyTorch file in the legacy format (before PyTorch 1.6); re-save "
                             "it as a zip archive: python3 -c \"import torch; "
                             "torch.save(torch.load('" +
                             path + "'), 'new.pt')\"");
  try {
    check_zip_directory(bytes);
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<BoundedReader>(bytes));
    if (!reader.hasRecord("data.pkl")) {
      if (reader.hasRecord("constants.pkl"))
        throw std::runtime_error(
            "a TorchScript archive (torch.jit.save); lmquant reads torch.save files: save the "
            "model's state_dict with torch.save");
      throw std::runtime_error("no data.pkl record");
    }
    if (reader.hasRecord("byteorder")) {
      auto [data, size] = reader.getRecord("byteorder");
      if (std::string(static_cast<const char*>(data.get()), size) != "little")
        throw std::runtime_error("written on a big-endian machine");
    }
    auto [data, size] = reader.getRecord("data.pkl");
    const std::string pickle(static_cast<const char*>(data.get()), size);
    std::map<std::string, PyValue*> storages;
    auto storage = [&](const PyValue& pid) -> PyValue* {
      if (pid.kind != Kind::kTuple || pid.items.size() < 5 || pid.items[0]->kind != Kind::kString ||
          pid.items[0]->text != "storage" || pid.items[2]->kind != Kind::kString)
        throw std::runtime_error("a persistent id other than a storage");
      const std::string& key = pid.items[2]->text;
      if (key.empty() || key.size() > 32 ||
          !std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum(c) || c == '_'; }))
        throw std::runtime_error("a storage key that is not a record name");
      if (pid.items[1]->kind != Kind::kGlobal)
        throw std::runtime_error("a storage whose type is " + pid.items[1]->describe());
      const torch::ScalarType dtype = storage_dtype(pid.items[1]->text);
      const int64_t numel = as_int(pid.items[4], "a storage's size");
      auto it = storages.find(key);
      if (it != storages.end()) {
        if (it->second->tensor.scalar_type() != dtype || it->second->tensor.numel() != numel)
          throw std::runtime_error("storage " + key + " named with two types or sizes");
        return it->second;
      }
      const std::string record = "data/" + key;
      if (!reader.hasRecord(record)) throw std::runtime_error("no record " + record);
      auto [bytes_ptr, nbytes] = reader.getRecord(record);
      const int64_t element = static_cast<int64_t>(c10::elementSize(dtype));
      if (numel < 0 || static_cast<uint64_t>(numel) > nbytes / element)
        throw std::runtime_error("storage " + key + " of " + std::to_string(numel) +
                                 " elements in a record of " + std::to_string(nbytes) + " bytes");
      auto t = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
      if (numel > 0) std::memcpy(t.data_ptr(), bytes_ptr.get(), numel * element);  // else null
      arena_.push_back(std::make_unique<PyValue>());
      PyValue* v = arena_.back().get();
      v->kind = Kind::kStorage;
      v->tensor = t;
      storages[key] = v;
      return v;
    };
    root_ = run_pickle(pickle, arena_, storage);
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    throw std::runtime_error(path + ": not a readable PyTorch file (" + what + ")");
  }
}

}  // namespace lmquant
