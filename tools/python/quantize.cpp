// Model.quantize (the CLI's quantize options as keyword arguments), the quantized model's
// report, save_packed / save_quantized.
#include <boost/program_options/errors.hpp>

#include "experiment/experiment.h"
#include "module.h"
#include "quant_options.h"

namespace lmquant::python {
namespace {

// Python keywords that are not the CLI option's name with '-' for '_'.
const std::map<std::string, std::string> kKeywordAlias = {{"grid_aware", "ocs-grid-aware"}};

// The keyword's value as the option's text: True a switch (False: not given), a list a comma
// list, a dict NAME=VALUE items, anything else str().
void add_keyword(std::vector<std::string>& args, const std::string& flag, const py::handle& v) {
  if (py::isinstance<py::bool_>(v)) {
    if (v.cast<bool>()) args.push_back(flag);
    return;
  }
  std::string text;
  if (py::isinstance<py::dict>(v)) {
    for (const auto& [k, x] : v.cast<py::dict>())
      text += (text.empty() ? "" : ",") + py::str(k).cast<std::string>() + "=" +
              py::str(x).cast<std::string>();
  } else if (py::isinstance<py::list>(v) || py::isinstance<py::tuple>(v)) {
    for (const auto& x : v) text += (text.empty() ? "" : ",") + py::str(x).cast<std::string>();
  } else {
    text = py::str(v).cast<std::string>();
  }
  if (text.empty()) return;  // an empty list or dict: the option's default
  args.push_back(flag);
  args.push_back(text);
}

// The configuration of Model.quantize's keywords: the CLI's one-form options (quant_options.h),
// parsed by the same code, errors naming the keyword instead of the flag.
QuantConfig config_of_keywords(const py::kwargs& kwargs, std::string& calibration) {
  std::map<std::string, std::string> flag_of;  // keyword -> option name
  for (const auto& name : options::one_form_option_names()) {
    std::string kw = name;
    for (auto& c : kw) c = c == '-' ? '_' : c;
    flag_of[kw] = name;
  }
  for (const auto& [kw, name] : kKeywordAlias) flag_of.erase(name), flag_of[kw] = name;
  std::vector<std::string> args;
  for (const auto& [k, v] : kwargs) {
    const auto kw = py::str(k).cast<std::string>();
    if (kw == "calibration") {
      calibration = py::str(v).cast<std::string>();
      continue;
    }
    const auto it = flag_of.find(kw);
    if (it == flag_of.end()) {
      std::string valid = "calibration";
      for (const auto& f : flag_of) valid += ", " + f.first;
      throw py::value_error("quantize() got an unknown keyword '" + kw +
                            "'; valid keywords: " + valid);
    }
    add_keyword(args, "--" + it->second, v);
  }
  auto keyword_message = [&](std::string msg) {
    for (const auto& [kw, name] : flag_of)
      for (auto at = msg.find("--" + name); at != std::string::npos; at = msg.find("--" + name))
        msg.replace(at, name.size() + 2, kw);
    return msg;
  };
  try {
    return options::config_of_args(args);
  } catch (const boost::program_options::error& e) {
    throw py::value_error(keyword_message(e.what()));
  } catch (const std::invalid_argument& e) {
    throw py::value_error(keyword_message(e.what()));
  }
}

std::shared_ptr<Model> quantize(const std::shared_ptr<Model>& self, const py::kwargs& kwargs) {
  if (self->quantized || self->file || self->loaded.format == "quantized" ||
      self->loaded.format == "packed")
    throw py::value_error("quantize() starts from a float model; this one is already quantized (" +
                          self->describe() + ")");
  std::string calibration;
  const QuantConfig q = config_of_keywords(kwargs, calibration);
  auto out = std::make_shared<Model>();
  interruptible([&] {
    std::lock_guard<std::mutex> lock(self->mutex);
    auto source = std::make_shared<LoadedModel>(self->loaded);
    auto qm = std::make_shared<QuantizedModel>();
    if (q.needs_calibration()) {
      // Calibration sequences from the train split (EvalContext draws them as quantize does).
      const Corpus c = load_named_corpus(calibration.empty() ? self->corpus : calibration,
                                         self->data_dir, source.get(), self->vocab);
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
    out->vocab = self->vocab;
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
      const Corpus c = load_named_corpus(m.corpus, m.data_dir, &source, m.vocab);
      source.vocab = c.vocab.words();
      source.vocab_hash = c.vocab.hash();
    }
    save_quantized(path, source, qm, packed);
  });
}

}  // namespace

void register_quantize(py::module_& m) {
  auto model = py::reinterpret_borrow<py::class_<Model, std::shared_ptr<Model>>>(m.attr("Model"));
  model.def("quantize", &quantize, R"doc(
Quantizes the weights (post-training, weight-only) and returns the quantized model: its folded
(simulated) float model scores and evaluates like any Model; `report` lists each matrix with
the plan it got; save_packed writes the file to ship. The keywords are `lmquant quantize`'s
options with '_' for '-' (one definition: tools/options/quant_options.h), values as Python
values: bits=4; clip='max' | 'mse' | 'aciq' | 'kl' | 'percentile:P' | 'fixed:C'; granularity=
'tensor' | 'row' | 'gate' | 'group:G'; method='clip' | 'ocs' (with expand_ratio=r, grid_aware,
alpha_on_original) | 'gptq' (= rounding='gptq', calibrated on calib_sequences sequences of the
train split of `calibration`, a corpus name or folder, default the model's); targets='all' or a
comma list; damp, gptq_order, gptq_decoder, fisher_decoder, gptq_embedding, alpha_by_output;
refit_decoder_bias (the decoder's float bias refitted to the float model's outputs, any rounding);
grid='midtread' | 'midrise'; half_scales; rotate, rotation_seed; row_widths=[0, 1, 2, 3, 4, 7]
(0: the row is dropped) with row_budget=2.2 or bits_per_weight=2.5 (the row budget solved so that
the model takes T bits per weight), row_sensitivity, row_alpha_factors=[0.8, 0.9, 1, 1.1] (each
row's α chosen by its own cost); matrix_bits={'embedding': 4},
matrix_granularity={'input.l0': 'group:64'}, matrix_row_budget={'embedding': 2.2}. True switches
an option on; an unknown keyword or value raises ValueError listing the valid ones.

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
