// lmquant quantize: quantize a model's matrices, evaluate, report one record.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli.h"
#include "experiment/experiment.h"
#include "mixed_precision_options.h"
#include "quant/quantized_io.h"
#include "report/report.h"

namespace lmquant::cli {

int cmd_quantize(const std::vector<std::string>& args) {
  CommonOptions common;
  options::QuantFlags f;
  options::MixedFlags mixed;
  std::string model_path, split = "test", save_path, packed_path;
  bool json = false, verify_expanded = false, no_kl = false;
  int repeats = 0;
  po::options_description m("Model and evaluation");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(), "model file (.lmq or a PyTorch file)")
    ("split", po::value(&split)->default_value(split), "train, valid or test")
    ("json", po::bool_switch(&json)->default_value(false), "print the record as one JSON object")
    ("no-kl", po::bool_switch(&no_kl)->default_value(false),
     "skip the divergence from the float model (mean KL(p_float || p_quant) per token and top-1 "
     "agreement, measured by running the float model beside the quantized one): about half the "
     "evaluation time")
    ("repeats", po::value(&repeats)->default_value(0),
     "rounding spread: K more quantizations with alpha jittered in [0.99, 1.01] per group")
    ("save-packed", po::value(&packed_path)->default_value(""),
     "write the quantized model packed at its bit widths (two 4-bit codes per byte, ...): the "
     "file to ship; eval, score and the API load it")
    ("save-quantized", po::value(&save_path)->default_value(""),
     "write the quantized model (codes, steps, OCS lists, config) here; eval and score load it")
    ("verify-expanded", po::bool_switch(&verify_expanded)->default_value(false),
     "also evaluate the expanded models (widened matrices + duplicated activations)");
  // clang-format on
  po::options_description desc;
  desc.add(m)
      .add(options::quantization_options(f, options::Form::kOne))
      .add(options::rounding_options(f, options::Form::kOne))
      .add(options::row_width_options(f))
      .add(options::mixed_precision_options(mixed))
      .add(data_options(common))
      .add(model_file_options(common))
      .add(compute_options(common));
  po::variables_map vm;
  if (!parse("quantize", "--model M --bits B --clip RULE [--method ocs --expand-ratio R]", desc,
             args, vm))
    return 0;
  const Split s = with_flag("--split", [&] { return parse_split(split); });
  QuantConfig q = options::config_of(f);
  if (q.method == Method::kOcs && !vm["expand-ratio"].defaulted() && q.expand_ratio == 0)
    note("note: --expand-ratio 0 adds no channel: OCS then equals plain clipping");
  if (repeats < 0) throw std::invalid_argument("--repeats: give 0 or a positive count");
  q.build_expanded = verify_expanded;
  options::check_mixed_precision(mixed, q);
  q.validate();  // its messages name the setting and value
  const auto device = setup_compute(common);
  LoadedModel loaded = load_model_file(model_path, common, device);
  Corpus corpus = load_corpus(common, &loaded);
  nlohmann::json joint_json;
  if (mixed.active()) {  // chooses on the first --select-tokens valid tokens (never on --split)
    const EvalContext select(loaded, corpus, Split::kValid, mixed.select_tokens);
    auto outcome = options::run_mixed_precision(mixed, select, q, common.quiet ? Log{} : Log{note});
    q = outcome.config;
    joint_json = outcome.joint;
    if (json)
      note(outcome.table);
    else
      std::printf("%s", outcome.table.c_str());
  }
  EvalContext ctx(loaded, corpus, s, 0, progress_bar(common.quiet || json));
  ctx.set_divergence(!no_kl);
  QuantizedModel qm;
  const Record rec = ctx.run(q, repeats, &qm);
  if (!save_path.empty() || !packed_path.empty()) {
    if (loaded.vocab.empty()) {  // PyTorch files carry none: record the corpus's
      loaded.vocab = corpus.vocab.words();
      loaded.vocab_hash = corpus.vocab.hash();
    }
    if (!save_path.empty()) save_quantized(save_path, loaded, qm);
    if (!packed_path.empty()) save_quantized(packed_path, loaded, qm, true);
  }
  nlohmann::json j = rec.to_json();
  if (!joint_json.is_null()) j["joint_allocation"] = joint_json;
  if (verify_expanded) {
    const EvalResult ex = evaluate(qm.expanded, ctx.stream(), ctx.options());
    j["expanded_perplexity"] = ex.perplexity;
    j["expanded_eval_seconds"] = ex.seconds;
    if (qm.transformed)
      j["float_transformed_perplexity"] =
          evaluate(qm.transformed, ctx.stream(), ctx.options()).perplexity;
  }
  if (json) {
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::printf("%s", quantize_summary(rec, corpus.location.name).c_str());
  if (verify_expanded) {
    std::printf("expanded model: perplexity %.4f (folded %.4f)\n",
                j["expanded_perplexity"].get<double>(), rec.perplexity());
    if (j.contains("float_transformed_perplexity"))
      std::printf("OCS model before rounding: perplexity %.4f (float %.4f)\n",
                  j["float_transformed_perplexity"].get<double>(), rec.float_perplexity);
  }
  return 0;
}

}  // namespace lmquant::cli
