// lmquant.load, lmquant.Model (describe, score) and lmquant.Score.
#include <algorithm>
#include <sstream>

#include "module.h"

namespace lmquant::python {

std::string Model::describe() const {
  std::ostringstream s;
  s << loaded.model->config().describe() << ", engine " << to_string(engine);
  if (quantized)
    s << ", " << quantized->config.label() << " (quantized in memory from " << float_model().path
      << ")";
  else
    s << ", " << loaded.format << " file " << loaded.path;
  return s.str();
}

namespace {

std::shared_ptr<Model> load(const std::string& path, const std::string& engine,
                            const std::string& device, const std::string& corpus,
                            const std::string& data_dir, const std::string& vocab,
                            const std::string& model_format) {
  require_file(path);
  const ImportFormat format = parse_import_format(model_format);
  if (!vocab.empty()) require_file(vocab);
  auto m = std::make_shared<Model>();
  m->engine = parse_engine(engine);
  m->corpus = corpus;
  m->data_dir = data_dir;
  m->vocab = vocab;
  const torch::Device dev = parse_device(device);
  if (m->engine == EngineKind::kInt8 && !dev.is_cpu())
    throw std::invalid_argument("engine 'int8' runs on the CPU: pass device='cpu'");
  interruptible([&] {
    if (m->engine == EngineKind::kInt8) {
      // The engine runs from the codes: no float copy of a quantized matrix is made.
      m->file = std::make_shared<QuantizedFile>(read_quantized(path, dev, false));
      m->hooks = int8_engine(*m->file, true, true);
      m->loaded = m->file->loaded;
    } else {
      m->loaded = load_any_model(path, dev, format);
    }
  });
  return m;
}

// texts: a list (any sequence) of str; a lone str is refused (it would be scored per character).
std::vector<std::string> texts_of(const py::handle& texts) {
  if (py::isinstance<py::str>(texts))
    throw py::type_error("score() takes a list of strings; for one text pass [text]");
  if (!py::isinstance<py::sequence>(texts))
    throw py::type_error(std::string("score() takes a list of strings, not ") +
                         py::str(texts.get_type().attr("__name__")).cast<std::string>());
  std::vector<std::string> out;
  size_t i = 0;
  for (const auto& t : texts) {
    if (!py::isinstance<py::str>(t))
      throw py::type_error("texts[" + std::to_string(i) + "] is " +
                           py::str(t.get_type().attr("__name__")).cast<std::string>() +
                           ", not str");
    out.push_back(t.cast<std::string>());
    ++i;
  }
  if (out.empty()) throw py::value_error("no texts to score: give a non-empty list of strings");
  return out;
}

std::vector<SentenceScore> score(Model& m, const py::handle& texts_in, int64_t batch_size,
                                 bool token_logprobs) {
  const std::vector<std::string> texts = texts_of(texts_in);
  if (batch_size < 1)
    throw py::value_error("batch_size must be >= 1, got " + std::to_string(batch_size));
  std::vector<SentenceScore> out;
  out.reserve(texts.size());
  interruptible([&] {
    std::lock_guard<std::mutex> lock(m.mutex);
    if (!m.scorer) {
      m.scorer = std::make_unique<SentenceScorer>(scorer_for(m.loaded, tokenizer_of(m.loaded), [&] {
        return load_named_corpus(m.corpus, m.data_dir, &m.float_model(), m.vocab).vocab;
      }));
      if (m.engine == EngineKind::kInt8) m.scorer->set_engine(m.hooks);
    }
    for (size_t b = 0; b < texts.size(); b += static_cast<size_t>(batch_size)) {
      const size_t e = std::min(texts.size(), b + static_cast<size_t>(batch_size));
      const std::vector<std::string_view> views(texts.begin() + static_cast<long>(b),
                                                texts.begin() + static_cast<long>(e));
      for (auto& s : m.scorer->score_batch(views, token_logprobs)) out.push_back(std::move(s));
    }
  });
  return out;
}

}  // namespace

void register_model(py::module_& m) {
  py::class_<SentenceScore>(m, "Score", R"doc(
The score of one text: tokens, words, logprob (natural log, <eos> included), perplexity
(per token), word_perplexity (per word, comparable across tokenizers), oov (words scored as
<unk>), token_logprobs (a float64 torch.Tensor, one value per target, the last the <eos>;
None unless asked for).

>>> s = model.score(["the cat sat on the mat ."])[0]
>>> s.tokens, s.words, s.token_logprobs.shape
(8, 8, torch.Size([8]))
)doc")
      .def_readonly("tokens", &SentenceScore::tokens, "scored targets, <eos> included")
      .def_readonly("words", &SentenceScore::words, "words (str.split()) + 1 for <eos>")
      .def_readonly("oov", &SentenceScore::oov, "words not in the vocabulary (scored as <unk>)")
      .def_readonly("logprob", &SentenceScore::logprob, "sum of log p(target | prefix), nats")
      .def_readonly("perplexity", &SentenceScore::perplexity, "exp(-logprob / tokens)")
      .def_readonly("word_perplexity", &SentenceScore::word_perplexity, "exp(-logprob / words)")
      .def_property_readonly(
          "token_logprobs",
          [](const SentenceScore& s) -> py::object {
            if (!s.token_logprobs.defined()) return py::none();
            return py::cast(s.token_logprobs);  // the same memory, no copy
          },
          "log p(target_i | prefix) per target, float64 torch.Tensor (None unless asked for)")
      .def(
          "as_dict",
          [](const SentenceScore& s) {
            py::dict d;
            d["tokens"] = s.tokens;
            d["words"] = s.words;
            d["logprob"] = s.logprob;
            d["perplexity"] = s.perplexity;
            d["word_perplexity"] = s.word_perplexity;
            d["oov"] = s.oov;
            return d;
          },
          "the fields `lmquant score` prints, as a dict")
      .def("__repr__", [](const SentenceScore& s) {
        char buf[160];
        std::snprintf(buf, sizeof buf,
                      "Score(tokens=%lld, words=%lld, logprob=%.4f, perplexity=%.2f, oov=%lld)",
                      static_cast<long long>(s.tokens), static_cast<long long>(s.words), s.logprob,
                      s.perplexity, static_cast<long long>(s.oov));
        return std::string(buf);
      });

  py::class_<Model, std::shared_ptr<Model>>(m, "Model", R"doc(
An LSTM language model: loaded by lmquant.load, or made by Model.quantize.

>>> model = lmquant.load("wt2-lstm200/model.pt")
>>> model.config["hidden"], model.engine
(200, 'float')
)doc")
      .def("score", &score, py::arg("texts"), py::arg("batch_size") = 32,
           py::arg("token_logprobs") = true, R"doc(
Scores each text (split like Python's str.split(), followed by <eos>, from a fresh state with
<eos> as the first input) and returns one lmquant.Score per text, in order. Texts run through
the model `batch_size` at a time (the same batches as `lmquant score --batch-size` give the same
numbers to the last digit), on every LibTorch thread, with the GIL released. An empty string is
the sentence boundary alone (1 token). Raises TypeError for a non-list or a non-str item,
ValueError for an empty list, KeyboardInterrupt on Ctrl-C.

>>> [s.tokens for s in model.score(["the cat sat .", "", "a b c"])]
[5, 1, 4]
)doc")
      .def_property_readonly(
          "engine", [](const Model& m) { return to_string(m.engine); }, "'float' or 'int8'")
      .def_property_readonly(
          "path", [](const Model& m) { return m.float_model().path; },
          "the file it was loaded from (for a quantized model: its source)")
      .def_property_readonly(
          "format", [](const Model& m) { return m.loaded.format; },
          "'lmquant', 'pytorch', 'quantized' or 'packed'")
      .def_property_readonly(
          "sha256", [](const Model& m) { return m.float_model().file_sha256; },
          "SHA-256 of the file (for a quantized model: of its source)")
      .def_property_readonly(
          "config", [](const Model& m) { return to_python(m.loaded.model->config().to_json()); },
          "the architecture: vocab, emb, hidden, layers, dropout, tied")
      .def_property_readonly(
          "tokenizer", [](const Model& m) { return m.loaded.tokenizer; },
          "'word' or 'spm:<sha256>'")
      .def("__repr__", [](const Model& m) { return "<lmquant.Model " + m.describe() + ">"; });

  m.def("load", &load, py::arg("path"), py::arg("engine") = "float", py::arg("device") = "cpu",
        py::arg("corpus") = "wikitext2", py::arg("data_dir") = "", py::arg("vocab") = "",
        py::arg("model_format") = "auto", R"doc(
Loads a model file: a PyTorch file (a state_dict or torch.save(model) of pytorch/examples'
word_language_model, with or without LSTM projections, salesforce/awd-lstm-lm or fastai's
AWD_LSTM; `model_format` auto recognises the layout, or word-lm, awd-lstm, fastai), an lmquant checkpoint
(.lmq), or a quantized or packed file (lmquant quantize --save-quantized / --save-packed, or
Model.save_packed). engine='int8' runs a quantized/packed file (<= 8 bits, per-row or per-tensor
scales) from its int8 codes on the CPU, as `lmquant eval --engine int8`. A PyTorch file carries
no vocabulary: `corpus` (a registered name or a folder; `data_dir` as --data-dir) supplies it,
or `vocab`, the model's own vocabulary file (one token per line, as the CLI's --vocab).
Raises FileNotFoundError for a missing file, ValueError for an unknown engine or device,
RuntimeError for a corrupt file.

>>> model = lmquant.load("model.4b.lmq", engine="int8")
)doc");
}

}  // namespace lmquant::python
