// The Python module's shared pieces: the Model object every binding works on, the JSON → Python
// bridge, the GIL/Ctrl-C wrapper for long calls, and one register_* per wrapped concept
// (module.cpp calls them: CTranslate2's python/cpp/module.cc layout).
#pragma once
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>  // torch.Tensor <-> at::Tensor, sharing memory

#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "corpus/corpus.h"
#include "engine/int8_engine.h"
#include "lm/model_io.h"
#include "lm/score.h"
#include "quant/quantize_model.h"
#include "quant/quantized_io.h"

namespace lmquant::python {

namespace py = pybind11;

// A model as Python holds it: what runs (a float model, a quantized file, or quantize()'s
// result), the engine it runs in, and, for quantize()'s result, the float model it came from.
struct Model {
  LoadedModel loaded;  // what runs; for quantize()'s result its folded (simulated) model
  EngineKind engine = EngineKind::kFloat;
  std::shared_ptr<QuantizedFile> file;              // engine int8: the codes it runs from
  EngineHooks hooks;                                // engine int8
  std::shared_ptr<const QuantizedModel> quantized;  // made by quantize()
  std::shared_ptr<const LoadedModel> source;        // the float model quantize() started from
  // The corpus a file without a vocabulary (a PyTorch state_dict) is scored and quantized with.
  std::string corpus = "wikitext2", data_dir;
  std::string vocab;  // the model's own vocabulary file (load(vocab=...)), "" for the corpus's
  std::unique_ptr<SentenceScorer> scorer;  // built on the first score()
  std::mutex mutex;                        // one call at a time on a model (the GIL is released)

  // The float model an evaluation compares with and a quantization starts from.
  const LoadedModel& float_model() const { return source ? *source : loaded; }
  std::string describe() const;
};

// A JSON value as the Python object json.loads would make of it.
py::object to_python(const nlohmann::json& j);

// The corpus named `corpus` (a registered name or a folder) located as the CLI does (data_dir,
// then $LMQUANT_DATA, then the cache; downloaded if missing), tokenized with `model`'s own
// tokenizer and checked against it.
// `vocab`: a vocabulary file that comes with the model (the CLI's --vocab), "" for none.
Corpus load_named_corpus(const std::string& corpus, const std::string& data_dir,
                         const LoadedModel* model, const std::string& vocab = "");

// Raises FileNotFoundError(ENOENT, message, path) when `path` does not exist.
void require_file(const std::string& path);

// Runs fn with the GIL released. From the main thread SIGINT is turned, for the call, into the
// library's stop flag: the work stops at its next safe point and the call raises
// KeyboardInterrupt (the library's Interrupted never reaches Python as a RuntimeError).
void interruptible(const std::function<void()>& fn);

void register_model(py::module_& m);
void register_quantize(py::module_& m);
void register_evaluate(py::module_& m);
void register_export(py::module_& m);

}  // namespace lmquant::python
