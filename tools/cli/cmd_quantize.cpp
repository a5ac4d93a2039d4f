// lmquant quantize: quantize a model's matrices (clip rules, OCS), evaluate, report one record.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli.h"
#include "experiment/experiment.h"
#include "experiment/joint_allocation.h"
#include "experiment/mixed_precision.h"
#include "quant/quantized_io.h"
#include "report/report.h"

namespace lmquant::cli {

int cmd_quantize(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, split = "test", clip = "max", granularity = "tensor", targets = "all",
                          method = "clip";
  QuantConfig q;
  RoundingFlags rf;
  bool json = false, verify_expanded = false, no_kl = false;
  int repeats = 0;
  double budget = 0, joint_budget = 0;
  JointOptions joint;
  std::string joint_grans;
  long select_tokens = 20000;
  std::string save_path, packed_path;
  po::options_description desc;
  po::options_description m("Model and evaluation");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(), "model file (.lmq or PyTorch state_dict)")
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
     "write the quantized model (codes, steps, OCS lists, config) here; eval and score load it");
  po::options_description qo("Quantization");
  qo.add_options()
    ("bits", po::value(&q.bits)->default_value(4), "bit width, 2..16")
    ("clip", po::value(&clip)->default_value(clip),
     "clip rule: max, fixed:C, mse, aciq, kl, percentile:P")
    ("granularity", po::value(&granularity)->default_value(granularity), "tensor, row, gate or group:G (one scale per G weights of a row)")
    ("targets", po::value(&targets)->default_value(targets),
     "all, or a comma list of embedding, input, recurrent, decoder")
    ("method", po::value(&method)->default_value(method),
     "clip, ocs, or gptq (clip with --rounding gptq)")
    ("bits-budget", po::value(&budget)->default_value(0.0),
     "mixed precision: bits per matrix (2..8) chosen on valid to meet this average of bits per "
     "weight, scales included, at the least measured loss (0: every matrix at --bits)")
    ("select-tokens", po::value(&select_tokens)->default_value(select_tokens),
     "--bits-budget, --joint-budget: measure on the first N valid tokens (0: all)");
  po::options_description jo("Joint mixed precision (src/experiment/joint_allocation.h)");
  jo.add_options()
    ("joint-budget", po::value(&joint_budget)->default_value(0.0),
     "whole-model bits per weight T (the record's, scales and width tags included): starting "
     "from this configuration, widths, granularities and the embedding/decoder split of the "
     "row budgets are changed one at a time, each move measured on the whole model on valid, "
     "the best taken until none lowers the loss (needs --row-widths; 0: off)")
    ("joint-granularities", po::value(&joint_grans)->default_value(""),
     "--joint-budget: granularities each matrix may also take, e.g. row,group:64 (empty: "
     "keep each matrix's)")
    ("joint-min-bits", po::value(&joint.min_bits)->default_value(joint.min_bits),
     "--joint-budget: narrowest width of a matrix without row widths")
    ("joint-max-bits", po::value(&joint.max_bits)->default_value(joint.max_bits),
     "--joint-budget: widest width of a matrix without row widths")
    ("joint-split-step", po::value(&joint.split_step)->default_value(joint.split_step),
     "--joint-budget: step of the embedding/decoder split of the row budgets, bits per row")
    ("joint-rounds", po::value(&joint.max_rounds)->default_value(joint.max_rounds),
     "--joint-budget: at most this many accepted moves")
    ("joint-min-gain", po::value(&joint.min_gain)->default_value(joint.min_gain),
     "--joint-budget: nats per token a move must save to be taken")
    ("joint-noise-repeats", po::value(&joint.noise_repeats)->default_value(joint.noise_repeats),
     "--joint-budget: also measure the start at K equally good roundings (alpha jittered 1%); "
     "a move must then gain more than 2 sqrt(2) sigma of their losses (0: no noise floor)");
  po::options_description oo("OCS");
  oo.add_options()
    ("expand-ratio", po::value(&q.expand_ratio)->default_value(0.0),
     "OCS expand ratio r in [0, 1]: ceil(r * in) splits per matrix")
    ("ocs-grid-aware", po::bool_switch(&q.grid_aware)->default_value(false),
     "split w into w/2 - s/4 and w/2 + s/4 instead of two halves (the quantization-aware split "
     "of Zhao et al.'s OCS code)")
    ("alpha-on-original", po::bool_switch(&q.alpha_on_original)->default_value(false),
     "choose the clip threshold on the original matrix instead of the split one")
    ("verify-expanded", po::bool_switch(&verify_expanded)->default_value(false),
     "also evaluate the expanded models (widened matrices + duplicated activations)");
  // clang-format on
  desc.add(m)
      .add(qo)
      .add(oo)
      .add(jo)
      .add(rounding_options(q, rf, false))
      .add(data_options(common))
      .add(compute_options(common));
  po::variables_map vm;
  if (!parse("quantize", "--model M --bits B --clip RULE [--method ocs --expand-ratio R]", desc,
             args, vm))
    return 0;
  const Split s = with_flag("--split", [&] { return parse_split(split); });
  q.clip = with_flag("--clip", [&] { return ClipRule::parse(clip); });
  q.granularity = with_flag("--granularity", [&] { return parse_granularity(granularity); });
  q.targets = with_flag("--targets", [&] { return parse_targets(targets); });
  if (method == "gptq") method = "clip", rf.rounding = "gptq";
  q.method = with_flag("--method", [&] { return parse_method(method); });
  q.rounding = with_flag("--rounding", [&] { return parse_rounding(rf.rounding); });
  apply_rounding_flags(q, rf);
  if (q.method == Method::kFloat) throw std::invalid_argument("--method: use clip, ocs or gptq");
  if (q.method == Method::kOcs && !vm["expand-ratio"].defaulted() && q.expand_ratio == 0)
    note("note: --expand-ratio 0 adds no channel: OCS then equals plain clipping");
  if (q.method != Method::kOcs && (q.expand_ratio != 0 || q.grid_aware || q.alpha_on_original))
    throw std::invalid_argument(
        "--expand-ratio, --ocs-grid-aware and --alpha-on-original apply "
        "to --method ocs only");
  if (repeats < 0) throw std::invalid_argument("--repeats: give 0 or a positive count");
  q.build_expanded = verify_expanded;
  if (budget != 0 && !(budget > 0))
    throw std::invalid_argument("--bits-budget: give a positive average");
  if ((budget != 0 || joint_budget != 0) && select_tokens < 0)
    throw std::invalid_argument("--select-tokens: give 0 (all) or a count");
  if (joint_budget != 0) {
    if (budget != 0) throw std::invalid_argument("--joint-budget: not with --bits-budget");
    if (!(joint_budget > 0)) throw std::invalid_argument("--joint-budget: give a positive T");
    // The start's row budget is re-set to meet T; any value in range starts it.
    if (q.has_row_widths() && q.row_budget == 0) q.row_budget = q.row_widths.front();
    if (!joint_grans.empty())
      joint.granularities =
          parse_list<Granularity>("--joint-granularities", joint_grans, parse_granularity);
  }
  q.validate();  // its messages name the setting and value
  const auto device = setup_compute(common);
  LoadedModel loaded = load_any_model(model_path, device);
  Corpus corpus = load_corpus(common, &loaded);
  // Both budgets choose on the first select_tokens valid tokens (never on --split).
  std::optional<EvalContext> select;
  if (budget != 0 || joint_budget != 0)
    select.emplace(loaded, corpus, Split::kValid, select_tokens);
  if (budget != 0) {
    const MixedPrecision mp = with_flag("--bits-budget", [&] {
      return choose_bits(*select, q, budget, 2, 8, common.quiet || json ? Log{} : Log{note});
    });
    q = mp.config;
    if (!json) std::printf("%s", allocation_table(mp).c_str());
  }
  nlohmann::json joint_json;
  if (joint_budget != 0) {
    const JointResult jr = with_flag("--joint-budget", [&] {
      // The search's progress goes to stderr, --json or not (each step is minutes on a real
      // model).
      return choose_jointly(*select, q, joint_budget, joint, common.quiet ? Log{} : Log{note});
    });
    q = jr.config;
    joint_json = {{"bits_per_weight", joint_budget},
                  {"select_tokens", select_tokens},
                  {"start_loss", jr.start_loss},
                  {"loss", jr.loss},
                  {"rounds", jr.rounds},
                  {"noise_std", jr.noise_std},
                  {"min_gain", jr.min_gain},
                  {"evaluations", jr.evaluations},
                  {"converged", jr.converged}};
    for (const auto& st : jr.steps)
      if (st.accepted && st.round > 0)
        joint_json["moves"].push_back({{"round", st.round}, {"move", st.move}, {"loss", st.loss}});
    if (json)
      note(joint_table(jr));
    else
      std::printf("%s", joint_table(jr).c_str());
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
  std::printf("%s on %s %s: perplexity %.2f (float %.2f, %s), size %.2f MiB (float %.2f)\n",
              q.label().c_str(), corpus.location.name.c_str(), split.c_str(), rec.perplexity(),
              rec.float_perplexity, delta_text(rec).c_str(), rec.size_bits / 8 / 1048576,
              rec.float_size_bits / 8 / 1048576);
  if (rec.has_divergence())
    std::printf("KL(float || quantized) %s nats/token, top-1 agreement with float %s\n",
                kl_text(rec).c_str(), top1_text(rec).c_str());
  if (corpus.tokenizer != "word")
    std::printf("per word (word-normalised): %.2f (float %.2f)\n", rec.word_perplexity(),
                perplexity_of_loss(ctx.float_eval().loss * rec.source.tokens_per_word()));
  if (!rec.repeat_perplexities.empty())
    std::printf("rounding spread over %d jittered repeats: %.2f ± %.2f\n", rec.spread().n,
                rec.spread().mean, rec.spread().std);
  if (verify_expanded) {
    std::printf("expanded model: perplexity %.4f (folded %.4f)\n",
                j["expanded_perplexity"].get<double>(), rec.perplexity());
    if (j.contains("float_transformed_perplexity"))
      std::printf("OCS model before rounding: perplexity %.4f (float %.4f)\n",
                  j["float_transformed_perplexity"].get<double>(), rec.float_perplexity);
  }
  std::printf("%s", matrix_table(qm.matrices).c_str());
  return 0;
}

}  // namespace lmquant::cli
