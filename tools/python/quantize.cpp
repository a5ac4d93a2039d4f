// Model.quantize (the CLI's quantize options as keyword arguments), the quantized model's
// report, save_packed / save_quantized.
#include "experiment/experiment.h"
#include "module.h"

namespace lmquant::python {
namespace {

std::shared_ptr<Model> quantize(
    const std::shared_ptr<Model>& self, int bits, const std::string& clip,
    const std::string& granularity, std::string method, std::string rounding, double expand_ratio,
    bool grid_aware, const std::string& targets, const std::map<std::string, int>& matrix_bits,
    int64_t calib_sequences, double damp, const std::string& gptq_order, bool gptq_decoder,
    const std::string& calibration, bool gptq_embedding, const std::vector<int>& row_widths,
    double row_budget, const std::string& row_sensitivity, const std::string& grid,
    bool half_scales, bool rotate, uint64_t rotation_seed, bool alpha_by_output,
    bool fisher_decoder, const std::map<std::string, std::string>& matrix_granularity,
    const std::map<std::string, double>& matrix_row_budget) {
  if (self->quantized || self->file || self->loaded.format == "quantized" ||
      self->loaded.format == "packed")
    throw py::value_error("quantize() starts from a float model; this one is already quantized (" +
                          self->describe() + ")");
  QuantConfig q;
  q.bits = bits;
  q.clip = ClipRule::parse(clip);
  q.granularity = parse_granularity(granularity);
  q.targets = parse_targets(targets);
  if (method == "gptq") method = "clip", rounding = "gptq";  // as `lmquant quantize --method gptq`
  q.method = parse_method(method);
  if (q.method == Method::kFloat) throw py::value_error("method: use clip, ocs or gptq");
  q.rounding = parse_rounding(rounding);
  if (q.method == Method::kOcs)
    q.expand_ratio = expand_ratio;
  else if (expand_ratio != 0 || grid_aware)
    throw py::value_error("expand_ratio and grid_aware apply to method='ocs' only");
  q.grid_aware = grid_aware;
  q.matrix_bits = matrix_bits;
  q.calib_sequences = calib_sequences;
  q.damp = damp;
  q.gptq_order = parse_gptq_order(gptq_order);
  q.gptq_decoder = gptq_decoder;
  q.gptq_embedding = gptq_embedding;
  q.row_widths = row_widths;
  q.row_budget = row_budget;
  q.row_sensitivity = parse_row_sensitivity(row_sensitivity);
  q.grid = parse_grid(grid);
  q.half_scales = half_scales;
  q.rotate = rotate;
  q.rotation_seed = rotation_seed;
  q.alpha_by_output = alpha_by_output;
  q.fisher_decoder = fisher_decoder;
  for (const auto& [name, g] : matrix_granularity)
    q.matrix_granularity[name] = parse_granularity(g);
  q.matrix_row_budget = matrix_row_budget;
  q.validate();  // messages name the setting and value
  auto out = std::make_shared<Model>();
  interruptible([&] {
    std::lock_guard<std::mutex> lock(self->mutex);
    auto source = std::make_shared<LoadedModel>(self->loaded);
    auto qm = std::make_shared<QuantizedModel>();
    if (q.needs_calibration()) {
      // Calibration sequences from the train split (EvalContext draws them as quantize does).
      const Corpus c = load_named_corpus(calibration.empty() ? self->corpus : calibration,
                                         self->data_dir, source.get());
      const EvalContext ctx(*source, c, Split::kTrain);
      *qm = ctx.quantize(q);
    } else {
      *qm = quantize_model(source->model, q);
    }
    out->loaded = *source;
    out->loaded.model = qm->folded;
    out->loaded.format = "quantized";
    out->quantized = qm;
    out->source = source;
    out->corpus = self->corpus;
    out->data_dir = self->data_dir;
  });
  return out;
}

const QuantizedModel& quantized_of(const Model& m) {
  if (!m.quantized) throw py::value_error("this model was not made by quantize(): " + m.describe());
  return *m.quantized;
}

void save(Model& m, const std::string& path, bool packed) {
  const QuantizedModel& qm = quantized_of(m);
  interruptible([&] {
    LoadedModel source = *m.source;
    if (source.vocab.empty()) {  // PyTorch files carry none: record the corpus's
      const Corpus c = load_named_corpus(m.corpus, m.data_dir, &source);
      source.vocab = c.vocab.words();
      source.vocab_hash = c.vocab.hash();
    }
    save_quantized(path, source, qm, packed);
  });
}

}  // namespace

void register_quantize(py::module_& m) {
  auto model = py::reinterpret_borrow<py::class_<Model, std::shared_ptr<Model>>>(m.attr("Model"));
  model.def("quantize", &quantize, py::arg("bits") = 4, py::arg("clip") = "max",
            py::arg("granularity") = "tensor", py::arg("method") = "clip",
            py::arg("rounding") = "nearest", py::arg("expand_ratio") = 0.0,
            py::arg("grid_aware") = false, py::arg("targets") = "all",
            py::arg("matrix_bits") = std::map<std::string, int>{}, py::arg("calib_sequences") = 512,
            py::arg("damp") = 0.01, py::arg("gptq_order") = "diag", py::arg("gptq_decoder") = false,
            py::arg("calibration") = "", py::arg("gptq_embedding") = false,
            py::arg("row_widths") = std::vector<int>{}, py::arg("row_budget") = 0.0,
            py::arg("row_sensitivity") = "output", py::arg("grid") = "midtread",
            py::arg("half_scales") = false, py::arg("rotate") = false, py::arg("rotation_seed") = 1,
            py::arg("alpha_by_output") = false, py::arg("fisher_decoder") = false,
            py::arg("matrix_granularity") = std::map<std::string, std::string>{},
            py::arg("matrix_row_budget") = std::map<std::string, double>{}, R"doc(
Quantizes the weights (post-training, weight-only) and returns the quantized model: its folded
(simulated) float model scores and evaluates like any Model; `report` lists each matrix;
save_packed writes the file to ship. The arguments are `lmquant quantize`'s options:
bits 2..16; clip max | mse | aciq | kl | percentile:P | fixed:C; granularity tensor | row | gate
| group:G; method clip | ocs (with expand_ratio r) | gptq (= rounding='gptq'); rounding
nearest | gptq (calibrated on `calib_sequences` sequences of the train split of `calibration`, a
corpus name or folder, default the model's corpus); targets 'all' or a comma list of
embedding, input, recurrent, decoder; matrix_bits {'embedding': 4, ...}; gptq_embedding (gptq:
the embedding rounded against W_ih); row_widths [2, 3, 4, 8] with row_budget 2.5 (bits per row
for the embedding and decoder, allocated by row_sensitivity 'output' or 'frequency', calibrated
on train); grid 'midtread' or 'midrise' (all 2^b levels); half_scales (float16 row steps); rotate (incoherence processing: each matrix quantized as W Q,
Q a random rotation drawn from rotation_seed); alpha_by_output (gptq: each row's clip
threshold chosen by the compensated output error); fisher_decoder (gptq: the decoder
compensated row by row against the output distribution); matrix_granularity {'input.l0':
'group:64', ...} and matrix_row_budget {'embedding': 2.2, 'decoder': 2.8} override granularity
and row_budget for single matrices (what `lmquant quantize --joint-budget` chooses). Unknown
values raise ValueError listing the valid ones.

>>> q = model.quantize(bits=4, clip="mse", granularity="row")
>>> q.label, q.bits_per_weight < 4.5
('mse 4b row', True)
)doc");
  model.def_property_readonly(
      "report",
      [](const Model& m) {
        py::list out;
        for (const auto& r : quantized_of(m).matrices) out.append(to_python(r.to_json()));
        return out;
      },
      "per quantized matrix: name, bits, rows, cols, split channels, alpha, mse, sqnr_db, ...");
  model.def_property_readonly(
      "quant_config",
      [](const Model& m) -> py::object {
        if (m.quantized) return to_python(m.quantized->config.to_json());
        if (m.loaded.meta.contains("quant")) return to_python(m.loaded.meta["quant"]);
        return py::none();
      },
      "the quantization configuration (as in a record's 'config'), None for a float model");
  model.def_property_readonly(
      "label", [](const Model& m) { return m.quantized ? m.quantized->config.label() : "float"; },
      "the configuration's one-line label ('mse 4b row'), 'float' for a float model");
  model.def_property_readonly(
      "bits_per_weight",
      [](const Model& m) {
        const QuantizedModel& q = quantized_of(m);
        return q.size_bits / static_cast<double>(q.params_before);
      },
      "stored bits per weight of the float model, scales and unquantized weights included");
  model.def(
      "save_packed", [](Model& m, const std::string& path) { save(m, path, true); },
      py::arg("path"), R"doc(
Writes the file to ship: each matrix bit-packed at its width (as `quantize --save-packed`),
read back by lmquant.load (engine='float' or 'int8') and `lmquant eval`. Written whole
(temporary file + rename).

>>> q.save_packed("model.4b.lmq")
)doc");
  model.def(
      "save_quantized", [](Model& m, const std::string& path) { save(m, path, false); },
      py::arg("path"), R"doc(
Writes int16 codes (for inspection, as `quantize --save-quantized`).

>>> q.save_quantized("model.4b.codes.lmq")
)doc");
}

}  // namespace lmquant::python
