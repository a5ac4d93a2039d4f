// The `lmquant._lmquant` extension: one register_* call per wrapped concept. The package
// (tools/python/lmquant/__init__.py) imports torch first, then re-exports these names.
#include "module.h"

#include <pythread.h>
#include <signal.h>

#include <cerrno>
#include <filesystem>

#include "corpus/corpus_store.h"
#include "util/interrupt.h"
#include "util/runtime.h"

namespace lmquant::python {
namespace {

unsigned long g_main_thread = 0;  // PyThread ident of the interpreter's main thread

void on_sigint(int) { set_interrupted(true); }

}  // namespace

py::object to_python(const nlohmann::json& j) {
  // Never destroyed: a static py::object would be released after the interpreter has gone.
  static const auto* loads = new py::object(py::module_::import("json").attr("loads"));
  return (*loads)(j.dump());
}

void require_file(const std::string& path) {
  if (std::filesystem::exists(path)) return;
  PyErr_SetObject(PyExc_FileNotFoundError,
                  py::make_tuple(ENOENT, "no such file: " + path, path).ptr());
  throw py::error_already_set();
}

Corpus load_named_corpus(const std::string& corpus, const std::string& data_dir,
                         const LoadedModel* model, const std::string& vocab) {
  CorpusOptions o;
  o.data_dir = data_dir;
  const CorpusLocation loc = locate_corpus(corpus, o);
  const TokenizerSpec spec = model ? tokenizer_of(*model) : TokenizerSpec{};
  Corpus c = load_corpus(loc, with_vocab_file(spec, vocab));
  if (model) check_corpus_matches(*model, c);
  return c;
}

void interruptible(const std::function<void()>& fn) {
  const bool main = PyThread_get_thread_ident() == g_main_thread;
  struct sigaction ours {
  }, old{};
  ours.sa_handler = on_sigint;
  sigemptyset(&ours.sa_mask);
  const bool installed = main && sigaction(SIGINT, &ours, &old) == 0;
  set_interrupted(false);
  bool stopped = false;
  try {
    py::gil_scoped_release nogil;
    fn();
  } catch (const Interrupted&) {
    stopped = true;
  } catch (...) {
    if (installed) sigaction(SIGINT, &old, nullptr);
    set_interrupted(false);
    throw;
  }
  if (installed) sigaction(SIGINT, &old, nullptr);
  // A Ctrl-C that came after the last safe point still stops the caller.
  if (interrupted()) stopped = true;
  set_interrupted(false);
  if (stopped) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
}

}  // namespace lmquant::python

PYBIND11_MODULE(_lmquant, m) {
  namespace py = pybind11;
  using namespace lmquant::python;
  m.doc() = "lmquant: post-training quantization of LSTM language models, measured in perplexity";
  g_main_thread =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  lmquant::configure_threads(0);  // all cores, as the CLI (Debian's LibTorch starts with one)
  m.attr("__version__") = LMQUANT_VERSION;
  register_model(m);
  register_quantize(m);
  register_evaluate(m);
  register_export(m);
}
