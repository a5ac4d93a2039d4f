// lmquant.evaluate (a Record, as `quantize --json` prints it) and lmquant.run_main_job.
#include "experiment/experiment.h"
#include "experiment/main_job.h"
#include "module.h"
#include "report/record.h"

namespace lmquant::python {
namespace {

py::object evaluate_model(Model& m, const std::string& corpus, const std::string& split,
                          int64_t first_tokens, const std::string& data_dir, bool kl) {
  const Split s = parse_split(split);
  if (first_tokens < 0) throw py::value_error("first_tokens must be >= 0 (0: the whole split)");
  nlohmann::json out;
  interruptible([&] {
    std::lock_guard<std::mutex> lock(m.mutex);
    const std::string dir = data_dir.empty() ? m.data_dir : data_dir;
    const Corpus c = load_named_corpus(corpus, dir, &m.float_model(), m.vocab);
    if (m.quantized) {
      // Against the float model it came from, on the same stream: what `quantize --json` prints.
      const EvalContext ctx(*m.source, c, s, first_tokens);
      LstmLm folded = m.quantized->folded;
      EvalOptions eo = ctx.options();
      if (kl) eo.reference = m.source->model;
      const EvalResult r = evaluate(folded, ctx.stream(), eo);
      out = make_record(ctx.source(), m.quantized->config, m.quantized.get(), *m.source->model, r,
                        ctx.float_eval())
                .to_json();
      return;
    }
    if (m.loaded.format != "quantized" && m.loaded.format != "packed") {
      out = EvalContext(m.loaded, c, s, first_tokens).float_record().to_json();
      return;
    }
    // A quantized or packed file, in its engine: its own evaluation (the float model it came
    // from is not at hand, so no comparison: float_perplexity 0, no interval).
    Record rec;
    rec.source = provenance_of(m.loaded, c, s, first_tokens);
    if (m.loaded.meta.contains("quant"))
      rec.config = rec.asked = QuantConfig::from_json(m.loaded.meta["quant"]);
    EvalOptions eo;
    if (m.engine == EngineKind::kInt8) eo.engine = m.hooks;
    LstmLm model = m.loaded.model;
    rec.eval = evaluate(model, stream_of(c, s, first_tokens), eo);
    out = rec.to_json();
  });
  out["engine"] = to_string(m.engine);
  return to_python(out);
}

py::object main_job(Model& m, const std::string& corpus, int bits, const std::string& data_dir,
                    const std::string& select_split, int64_t select_tokens,
                    const std::string& report_split, const std::string& roundings,
                    const std::string& report_dir) {
  if (m.quantized || m.file || m.loaded.format == "quantized" || m.loaded.format == "packed")
    throw py::value_error("the main job starts from a float model: " + m.describe());
  MainJobOptions o;
  o.bits = bits;
  o.select_split = parse_split(select_split);
  o.select_tokens = select_tokens;
  o.report_split = parse_split(report_split);
  o.roundings.clear();
  size_t at = 0;
  while (at <= roundings.size()) {
    const size_t comma = std::min(roundings.find(',', at), roundings.size());
    o.roundings.push_back(parse_rounding(roundings.substr(at, comma - at)));
    at = comma + 1;
  }
  o.validate();
  nlohmann::json out;
  interruptible([&] {
    std::lock_guard<std::mutex> lock(m.mutex);
    const Corpus c =
        load_named_corpus(corpus, data_dir.empty() ? m.data_dir : data_dir, &m.loaded, m.vocab);
    const MainJobResult res = run_main_job(m.loaded, c, o);
    if (!report_dir.empty())
      write_main_report(report_dir, res, m.loaded, o, m.loaded.path, "decoder");
    out = res.to_json();
  });
  return to_python(out);
}

}  // namespace

void register_evaluate(py::module_& m) {
  m.def("evaluate", &evaluate_model, py::arg("model"), py::arg("corpus") = "wikitext2",
        py::arg("split") = "test", py::arg("first_tokens") = 0, py::arg("data_dir") = "",
        py::arg("kl") = true, R"doc(
Perplexity of `model` on a corpus split under lmquant's protocol (batch 10, bptt 35, state
carried across chunks) and returns the record as a dict — the JSON schema of
`lmquant quantize --json`: provenance (model SHA-256, corpus, split and its SHA-256, slice,
tokenizer, version), config, loss, perplexity, word_perplexity, per-chunk NLL, and for a model
made by quantize() the comparison with its float model (delta_pct and its 95% paired-bootstrap
interval ci_low/ci_high; with `kl`, the default, also "kl_to_float" and "top1_agreement": the mean
KL(p_float || p) per token and the fraction of positions whose most likely next token is the float
model's, each with its 95% interval, measured by running the float model beside it), accounting
and the per-matrix report. `first_tokens` N > 0 evaluates the split's first N tokens. Plus
"engine".

>>> r = lmquant.evaluate(q, corpus="wikitext2", split="valid", first_tokens=50000)
>>> sorted(k for k in r if k.startswith("ci_"))
['ci_high', 'ci_low']
)doc");
  m.def("run_main_job", &main_job, py::arg("model"), py::arg("corpus") = "wikitext2",
        py::arg("bits") = 4, py::arg("data_dir") = "", py::arg("select_split") = "valid",
        py::arg("select_tokens") = 50000, py::arg("report_split") = "test",
        py::arg("roundings") = "nearest,gptq", py::arg("report_dir") = "", R"doc(
The main job (`lmquant --corpus C --bits B`): every candidate evaluated on the selection stream,
the recommendation chosen there, the family leaders reported on `report_split` with intervals.
Returns {"recommendation", "reported", "candidates", "curve", "selection", ...} (records as
lmquant.evaluate returns them); with `report_dir`, also writes the report directory.

>>> job = lmquant.run_main_job(model, bits=4)
>>> job["recommendation"]["split"], len(job["reported"]) > 1
('test', True)
)doc");
}

}  // namespace lmquant::python
