#include "lm/pytorch_file.h"

#include <set>
#include <stdexcept>

#include "lm/torch_pickle.h"

namespace lmquant {
namespace {

using Kind = PyValue::Kind;

// An nn.Module as pickled: an object whose BUILD state is a dict with `_parameters` or `_modules`.
const PyValue* module_state(const PyValue& v) {
  if (v.kind != Kind::kObject || !v.state || v.state->kind != Kind::kDict) return nullptr;
  if (!v.state->get("_parameters") && !v.state->get("_modules")) return nullptr;
  return v.state;
}

bool is_tensor_dict(const PyValue& v) {
  if (v.kind != Kind::kDict) return false;
  for (const auto& [k, x] : v.entries)
    if (x->kind == Kind::kTensor) return true;
  return false;
}

void read_dict(const PyValue& d, const std::string& path, PyTorchTensors& out) {
  for (const auto& [k, x] : d.entries) {
    if (k->kind != Kind::kString)
      throw std::runtime_error(path + ": a state_dict key that is " + k->describe() +
                               ", not a str");
    if (x->kind != Kind::kTensor)
      throw std::runtime_error(path + ": state_dict entry '" + k->text + "' holds " +
                               x->describe() + ", not a tensor");
    out.tensors.emplace_back(k->text, x->tensor);
  }
}

void read_module(const PyValue& m, const std::string& prefix, int depth, const std::string& path,
                 PyTorchTensors& out) {
  if (depth > 32) throw std::runtime_error(path + ": modules nested deeper than 32");
  const PyValue* s = module_state(m);
  if (!s) throw std::runtime_error(path + ": module " + prefix + " is " + m.describe());
  std::set<std::string> non_persistent;
  if (const PyValue* np = s->get("_non_persistent_buffers_set")) {
    // builtins.set([...]) pickles as an object made from one list; protocol 4 as a set.
    const auto& items =
        np->kind == Kind::kObject && !np->items.empty() ? np->items[0]->items : np->items;
    for (const PyValue* x : items)
      if (x->kind == Kind::kString) non_persistent.insert(x->text);
  }
  for (const char* group : {"_parameters", "_buffers"}) {
    const PyValue* g = s->get(group);
    if (!g) continue;
    if (g->kind != Kind::kDict)
      throw std::runtime_error(path + ": " + prefix + group + " is " + g->describe());
    for (const auto& [k, x] : g->entries) {
      if (k->kind != Kind::kString) throw std::runtime_error(path + ": a non-str parameter name");
      if (x->kind == Kind::kNone) continue;  // an unset parameter (e.g. bias=False)
      if (x->kind != Kind::kTensor)
        throw std::runtime_error(path + ": " + prefix + k->text + " is " + x->describe());
      if (group[1] == 'b' && non_persistent.count(k->text)) {
        out.ignored.push_back(prefix + k->text + " (a non-persistent buffer)");
        continue;
      }
      out.tensors.emplace_back(prefix + k->text, x->tensor);
    }
  }
  if (const PyValue* mods = s->get("_modules")) {
    if (mods->kind != Kind::kDict)
      throw std::runtime_error(path + ": " + prefix + "_modules is " + mods->describe());
    for (const auto& [k, x] : mods->entries) {
      if (k->kind != Kind::kString) throw std::runtime_error(path + ": a non-str module name");
      if (x->kind == Kind::kNone) continue;
      read_module(*x, prefix + k->text + ".", depth + 1, path, out);
    }
  }
}

// Reads `v` as a state_dict or a module; false when it is neither.
bool read_value(const PyValue& v, const std::string& path, PyTorchTensors& out) {
  if (module_state(v)) {
    out.found = "a pickled " + v.text + " (torch.save(model))";
    read_module(v, "", 0, path, out);
    return true;
  }
  if (is_tensor_dict(v)) {
    // torch.save(model.state_dict()) is an OrderedDict whose attribute _metadata holds each
    // module's version: nothing lmquant needs.
    out.found = v.text == "collections.OrderedDict" ? "a state_dict (OrderedDict)"
                                                    : "a plain dict of tensors";
    if (v.state && v.state->kind == Kind::kDict && v.state->get("_metadata"))
      out.ignored.push_back("the state_dict's _metadata (module versions)");
    read_dict(v, path, out);
    return true;
  }
  return false;
}

}  // namespace

PyTorchTensors read_pytorch_tensors(const std::string& bytes, const std::string& path) {
  TorchPickle file(bytes, path);
  const PyValue& root = file.root();
  PyTorchTensors out;
  if (read_value(root, path, out)) return out;
  if (root.kind == Kind::kDict) {
    const PyValue* chosen = nullptr;
    std::string chosen_key;
    for (const char* key : {"state_dict", "model_state_dict", "model", "module"}) {
      const PyValue* x = root.get(key);
      if (x && (is_tensor_dict(*x) || module_state(*x))) {
        chosen = x;
        chosen_key = key;
        break;
      }
    }
    std::vector<std::string> candidates, keys;
    for (const auto& [k, x] : root.entries) {
      const std::string name = k->kind == Kind::kString ? k->text : k->describe();
      keys.push_back(name);
      if (is_tensor_dict(*x) || module_state(*x)) candidates.push_back(name);
    }
    if (!chosen && candidates.size() == 1) {
      chosen_key = candidates[0];
      chosen = root.get(chosen_key);
    }
    if (!chosen) {
      std::string list;
      for (const auto& k : (candidates.empty() ? keys : candidates))
        list += (list.empty() ? "'" : ", '") + k + "'";
      throw std::runtime_error(path + ": a dict whose entries (" + list + ") " +
                               (candidates.empty()
                                    ? "hold no tensors and no module"
                                    : "each hold a model; save the one to quantize with "
                                      "torch.save(d[KEY], 'model.pt')"));
    }
    read_value(*chosen, path, out);
    out.found += " in entry '" + chosen_key + "'";
    for (const auto& k : keys)
      if (k != chosen_key) out.ignored.push_back("entry '" + k + "'");
    return out;
  }
  if (root.kind == Kind::kList || root.kind == Kind::kTuple) {
    // awd-lstm's main.py saves [model, criterion, optimizer]: the first item that is a model.
    for (size_t i = 0; i < root.items.size(); ++i) {
      if (!read_value(*root.items[i], path, out)) continue;
      out.found += " as item " + std::to_string(i) + " of a " +
                   (root.kind == Kind::kList ? "list" : "tuple");
      for (size_t j = 0; j < root.items.size(); ++j)
        if (j != i)
          out.ignored.push_back("item " + std::to_string(j) + " (" + root.items[j]->describe() +
                                ")");
      return out;
    }
  }
  throw std::runtime_error(path + ": holds " + root.describe() +
                           ", not a model, a state_dict or a dict or list holding one");
}

}  // namespace lmquant
