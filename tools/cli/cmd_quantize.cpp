// lmquant quantize: quantize a model's matrices (clip rules, OCS), evaluate, report.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "lm/evaluate.h"
#include "quant/quantize_model.h"
#include "quant/quantized_io.h"

namespace lmquant::cli {

int cmd_quantize(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, split = "test", clip = "max", granularity = "tensor", targets = "all",
              method = "clip";
  QuantConfig q;
  bool json = false, verify_expanded = false;
  std::string save_path;
  po::options_description desc;
  po::options_description m("Model and evaluation");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(), "model file (.lmq or PyTorch state_dict)")
    ("split", po::value(&split)->default_value(split), "train, valid or test")
    ("json", po::bool_switch(&json)->default_value(false), "print one JSON object")
    ("save-quantized", po::value(&save_path)->default_value(""),
     "write the quantized model (codes, steps, OCS lists, config) here; eval and score load it");
  po::options_description qo("Quantization");
  qo.add_options()
    ("bits", po::value(&q.bits)->default_value(4), "bit width, 2..16")
    ("clip", po::value(&clip)->default_value(clip),
     "clip rule: max, fixed:C, mse, aciq, kl, percentile:P")
    ("granularity", po::value(&granularity)->default_value(granularity), "tensor, row or gate")
    ("targets", po::value(&targets)->default_value(targets),
     "all, or a comma list of embedding, input, recurrent, decoder")
    ("method", po::value(&method)->default_value(method), "clip or ocs");
  po::options_description oo("OCS");
  oo.add_options()
    ("expand-ratio", po::value(&q.expand_ratio)->default_value(0.0),
     "OCS expand ratio r in [0, 1]: ceil(r * in) splits per matrix")
    ("ocs-grid-aware", po::bool_switch(&q.grid_aware)->default_value(false),
     "split into w/2 -/+ s/4 (the seed code's grid-aware rule)")
    ("alpha-on-original", po::bool_switch(&q.alpha_on_original)->default_value(false),
     "choose the clip threshold on the original matrix instead of the split one")
    ("verify-expanded", po::bool_switch(&verify_expanded)->default_value(false),
     "also evaluate the expanded models (widened matrices + duplicated activations)");
  // clang-format on
  desc.add(m).add(qo).add(oo).add(data_options(common)).add(compute_options(common));
  po::variables_map vm;
  if (!parse("quantize", "--model M --bits B --clip RULE [--method ocs --expand-ratio R]", desc,
             args, vm))
    return 0;
  const Split s = parse_split(split);
  q.clip = ClipRule::parse(clip);
  q.granularity = parse_granularity(granularity);
  q.targets = parse_targets(targets);
  q.method = parse_method(method);
  if (q.method == Method::kFloat) throw std::invalid_argument("--method: use clip or ocs");
  if (q.method == Method::kOcs && !vm["expand-ratio"].defaulted() && q.expand_ratio == 0)
    note("note: --expand-ratio 0 adds no channel: OCS then equals plain clipping");
  q.build_expanded = verify_expanded;
  q.validate();
  const auto device = setup_compute(common);
  LoadedModel loaded = load_model(model_path, device);
  Corpus corpus = load_corpus(common, &loaded);
  const auto progress = progress_bar(common.quiet || json);
  const EvalResult fl = evaluate(loaded.model, corpus.split(s), {10, 35, progress});
  QuantizedModel qm = quantize_model(loaded.model, q);
  if (!save_path.empty()) {
    if (loaded.vocab.empty()) {  // PyTorch files carry none: record the corpus's
      loaded.vocab = corpus.vocab.words();
      loaded.vocab_hash = corpus.vocab.hash();
    }
    save_quantized(save_path, loaded, qm);
  }
  const EvalResult qr = evaluate(qm.folded, corpus.split(s), {10, 35, progress});
  nlohmann::json j = q.to_json();
  j["model"] = model_path;
  j["split"] = split;
  j["tokens"] = qr.tokens;
  j["perplexity"] = qr.perplexity;
  j["float_perplexity"] = fl.perplexity;
  j["tokenizer"] = corpus.tokenizer;
  j["tokens_per_word"] = corpus.tokens_per_word(s);
  j["word_perplexity"] = word_normalised_perplexity(qr.loss, corpus.tokens(s), corpus.words(s));
  j["float_word_perplexity"] =
      word_normalised_perplexity(fl.loss, corpus.tokens(s), corpus.words(s));
  j["delta_percent"] = 100 * (qr.perplexity / fl.perplexity - 1);
  j["quantize_seconds"] = qm.seconds;
  j["eval_seconds"] = qr.seconds;
  j["float_eval_seconds"] = fl.seconds;
  j["size_bits"] = qm.size_bits;
  j["float_size_bits"] = qm.float_size_bits;
  j["params_overhead_percent"] = 100.0 * (qm.params_after - qm.params_before) / qm.params_before;
  j["macs_overhead_percent"] = 100.0 * (qm.macs_after - qm.macs_before) / qm.macs_before;
  j["matrices"] = nlohmann::json::array();
  for (const auto& r : qm.matrices) j["matrices"].push_back(r.to_json());
  if (verify_expanded) {
    const EvalResult ex = evaluate(qm.expanded, corpus.split(s), {10, 35, progress});
    j["expanded_perplexity"] = ex.perplexity;
    j["expanded_eval_seconds"] = ex.seconds;
    if (qm.transformed) {
      const EvalResult tr = evaluate(qm.transformed, corpus.split(s), {10, 35, progress});
      j["float_transformed_perplexity"] = tr.perplexity;
    }
  }
  if (json) {
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::printf("%s on %s %s: perplexity %.2f (float %.2f, %+.2f%%), size %.2f MiB (float %.2f)\n",
              q.label().c_str(), corpus.location.name.c_str(), split.c_str(), qr.perplexity,
              fl.perplexity, j["delta_percent"].get<double>(), qm.size_bits / 8 / 1048576,
              qm.float_size_bits / 8 / 1048576);
  if (corpus.tokenizer != "word")
    std::printf("per word (word-normalised): %.2f (float %.2f)\n",
                j["word_perplexity"].get<double>(), j["float_word_perplexity"].get<double>());
  if (verify_expanded) {
    std::printf("expanded model: perplexity %.4f (folded %.4f)\n",
                j["expanded_perplexity"].get<double>(), qr.perplexity);
    if (j.contains("float_transformed_perplexity"))
      std::printf("OCS model before rounding: perplexity %.4f (float %.4f)\n",
                  j["float_transformed_perplexity"].get<double>(), fl.perplexity);
  }
  std::printf("%-18s %6s %8s %8s %9s %9s %10s %8s %8s\n", "matrix", "splits", "max|W|",
              "max|W'|", "alpha", "mse", "sqnr(dB)", "clipped", "MACs+");
  for (const auto& r : qm.matrices)
    std::printf("%-18s %6lld %8.4f %8.4f %9.5f %9.3g %10.2f %7.4f%% %7.2f%%\n", r.name.c_str(),
                static_cast<long long>(r.split_channels), r.max_abs_before, r.max_abs_after,
                r.alpha, r.mse, r.sqnr_db, 100 * r.clipped_fraction,
                r.macs_before ? 100.0 * (r.macs_after - r.macs_before) / r.macs_before : 0.0);
  return 0;
}

}  // namespace lmquant::cli
