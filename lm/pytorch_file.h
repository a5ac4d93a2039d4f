// The named tensors of a torch.save file, however the model was saved:
//
//   torch.save(model.state_dict(), f)     an OrderedDict of tensors (its _metadata set aside)
//   torch.save(dict_of_tensors, f)        a plain dict
//   torch.save(model, f)                  the pickled module tree: the parameters and persistent
//                                         buffers of each module's `_parameters` / `_buffers`,
//                                         named by their path through `_modules`
//                                         ("rnn.weight_hh_l0"), as model.state_dict() would name
//                                         them; no Python class is needed (lm/torch_pickle.h)
//   torch.save({"state_dict": ..., "epoch": 3, "optimizer": ...}, f)   a wrapper: the entry
//                                         "state_dict", "model_state_dict", "model" or "module"
//                                         (in that order; else the only entry holding tensors or a
//                                         module), read as above; the others are named as ignored
//   torch.save([model, criterion, optimizer], f)   (awd-lstm's main.py) the first item that is a
//                                         model or a state_dict; the others named as ignored
//
// Names keep any prefix the trainer gave them (DataParallel's "module.", ESPnet's "lm."): the
// layout importer strips it.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace lmquant {

struct PyTorchTensors {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // in the file's order
  // What was found: "a state_dict (OrderedDict)", "a plain dict of tensors",
  // "a pickled model.RNNModel (torch.save(model))", with "in entry 'state_dict'" for a wrapper.
  std::string found;
  std::vector<std::string> ignored;  // what was set aside, each with why
};

// Throws std::runtime_error naming `path` and what the file holds when no tensors are found.
PyTorchTensors read_pytorch_tensors(const std::string& bytes, const std::string& path);

}  // namespace lmquant
