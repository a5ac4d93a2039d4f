// lmquant [report]: the main job. `lmquant --corpus wikitext2 --bits 4` resolves the corpus, takes
// --model or the cached default model (training and caching it first when there is none), then
// compares at the given bits on the test split: float; each clip rule; OCS at each expand ratio
// with max and with the best clip rule. It prints the table, names the best method, and writes
// the report directory (report.md, results.csv, results.json, plots) whole.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "cli.h"
#include "lm/evaluate.h"
#include "lm/train.h"
#include "report/plots.h"
#include "report/report.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace lmquant::cli {
int cmd_report(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, split = "test", report_dir = "lmquant-report", preset = "small",
              clips = "max,mse,aciq,kl,percentile:99.99", ratios = "0.01,0.02,0.05,0.1",
              granularity = "tensor", targets = "all", plot_matrix = "recurrent.l0";
  int bits = 4;
  int64_t epochs = 3;
  po::options_description desc;
  po::options_description m("Model");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->default_value(""),
     "model file (.lmq or PyTorch state_dict); default: the cached default model, trained first "
     "when there is none")
    ("preset", po::value(&preset)->default_value(preset), "default model's preset: small, medium, large")
    ("epochs", po::value(&epochs)->default_value(epochs), "default model's training epochs");
  po::options_description q("Quantization");
  q.add_options()
    ("bits", po::value(&bits)->default_value(bits), "bit width, 2..16")
    ("clips", po::value(&clips)->default_value(clips), "clip rules compared")
    ("expand-ratios", po::value(&ratios)->default_value(ratios), "OCS expand ratios compared")
    ("granularity", po::value(&granularity)->default_value(granularity), "tensor, row or gate")
    ("targets", po::value(&targets)->default_value(targets), "all or a comma list");
  po::options_description o("Output");
  o.add_options()
    ("split", po::value(&split)->default_value(split), "evaluation split")
    ("report-dir", po::value(&report_dir)->default_value(report_dir),
     "report directory (report.md, results.csv, results.json, *.png), replaced whole")
    ("plot-matrix", po::value(&plot_matrix)->default_value(plot_matrix),
     "matrix whose weight histogram before/after OCS is plotted");
  // clang-format on
  desc.add(m).add(q).add(o).add(data_options(common)).add(compute_options(common));
  po::variables_map vm;
  if (!parse("[report]", "[--corpus wikitext2] [--bits 4] [--model M] [--report-dir DIR]", desc,
             args, vm))
    return 0;
  // Validate everything before any work.
  const Split s = parse_split(split);
  QuantConfig base;
  base.bits = bits;
  base.granularity = parse_granularity(granularity);
  base.targets = parse_targets(targets);
  base.validate();
  preset_config(preset);  // validates --preset
  std::vector<ClipRule> rules;
  for (const auto& c : split_list(clips, "--clips")) rules.push_back(ClipRule::parse(c));
  std::vector<double> rs;
  for (const auto& r : split_list(ratios, "--expand-ratios")) {
    rs.push_back(std::stod(r));
    ocs_split_count(rs.back(), 1);
  }
  {
    // Fail now, not after an hour of evaluation, when the report cannot be written.
    const fs::path parent = fs::absolute(report_dir).parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec || ::access(parent.c_str(), W_OK) != 0)
      throw std::runtime_error("--report-dir " + report_dir + ": " + parent.string() +
                               " is not writable; choose another --report-dir");
  }
  const auto device = setup_compute(common);
  LoadedModel loaded;
  if (!model_path.empty()) loaded = load_model(model_path, device);
  Corpus corpus = load_corpus(common, model_path.empty() ? nullptr : &loaded);
  if (model_path.empty()) {
    const std::string tok = corpus.tokenizer == "word" ? "" : "-spm-" + corpus.tokenizer.substr(4, 12);
    const std::string cached = default_cache_dir() + "/models/" + corpus.location.name + "-" +
                               preset + tok + ".lmq";
    if (!fs::exists(cached)) {
      note("no --model given and no cached default model " + cached + ": training one (" +
           preset + " preset, " + std::to_string(epochs) + " epochs; about 19 min per epoch for "
           "the small preset on 2 cores, see the progress bar's ETA)");
      make_directories(default_cache_dir() + "/models");
      LstmLmConfig c = preset_config(preset);
      c.vocab = corpus.vocab.size();
      torch::manual_seed(1111);
      LstmLm fresh(c);
      fresh->to(device);
      TrainOptions t;
      t.epochs = epochs;
      t.out = cached;
      t.resume = fs::exists(cached + ".last");
      t.progress = progress_bar(common.quiet);
      t.log = [](const std::string& l) { note(l); };
      train(fresh, corpus, t);
    }
    model_path = cached;
    loaded = load_model(model_path, device);
    check_corpus_matches(loaded, corpus);
  }
  const auto progress = progress_bar(common.quiet);
  const auto& stream = corpus.split(s);

  std::vector<Record> records;
  auto finish = [&](Record r) {
    r.model = model_path;
    r.model_sha256 = loaded.file_sha256;
    r.model_desc = loaded.model->config().describe();
    r.corpus = corpus.location.name;
    r.split = split;
    r.tokenizer = corpus.tokenizer;
    r.tokens_per_word = corpus.tokens_per_word(s);
    if (!common.quiet)
      note(r.label() + ": perplexity " + std::to_string(r.perplexity));
    records.push_back(r);
    return records.back();
  };
  const EvalResult fl = evaluate(loaded.model, stream, {10, 35, progress});
  {
    Record f = make_record(nullptr, nullptr, fl.perplexity, fl.perplexity, fl.tokens, fl.seconds);
    for (const auto& [name, t] : loaded.model->named_weights())
      if (!(name == "decoder.weight" && loaded.model->config().tied)) f.size_bits += 32.0 * t.numel();
    finish(f);
  }
  auto run = [&](QuantConfig q) {
    QuantizedModel qm = quantize_model(loaded.model, q);
    const EvalResult r = evaluate(qm.folded, stream, {10, 35, progress});
    return finish(make_record(&q, &qm, r.perplexity, fl.perplexity, r.tokens, qm.seconds + r.seconds));
  };
  ClipRule best_rule;
  double best_ppl = INFINITY;
  for (const auto& rule : rules) {
    QuantConfig q = base;
    q.clip = rule;
    const Record r = run(q);
    if (rule.kind != ClipRule::Kind::kMax && r.perplexity < best_ppl)
      best_ppl = r.perplexity, best_rule = rule;
  }
  std::vector<ClipRule> ocs_rules = {ClipRule::parse("max")};
  if (std::isfinite(best_ppl)) ocs_rules.push_back(best_rule);
  for (const auto& rule : ocs_rules)
    for (double r : rs) {
      QuantConfig q = base;
      q.method = Method::kOcs;
      q.clip = rule;
      q.expand_ratio = r;
      run(q);
    }
  const Record* best = best_quantized(records);
  std::printf("%s, %s %s split (%lld targets), %d bits, %s granularity\n\n",
              loaded.model->config().describe().c_str(), corpus.location.name.c_str(),
              split.c_str(), static_cast<long long>(fl.tokens), bits, granularity.c_str());
  const bool per_word = corpus.tokenizer != "word";  // subword: also the comparable per-word value
  std::printf("%-26s %12s%s %10s %10s %11s\n", "method", "perplexity", per_word ? "     per word" : "",
              "delta", "overhead", "size");
  for (const auto& r : records) {
    char word_col[32] = "";
    if (per_word) std::snprintf(word_col, sizeof word_col, " %12.2f", r.word_perplexity());
    std::printf("%-26s %12.2f%s %+9.2f%% %9.2f%% %8.2f MiB\n", r.label().c_str(), r.perplexity,
                word_col, r.delta_percent, r.macs_overhead_percent, r.size_bits / 8 / 1048576);
  }
  std::printf("\nbest at %d bits: %s (perplexity %.2f, %+.2f%% vs float)\n", bits,
              best->label().c_str(), best->perplexity, best->delta_percent);

  std::vector<std::string> plot_notes;
  write_report_dir(report_dir, [&](const std::string& dir) {
    if (auto msg = plot_perplexity_vs_overhead(records, dir + "/perplexity_vs_overhead.png"); !msg.empty())
      plot_notes.push_back(msg);
    if (auto msg = plot_perplexity_vs_bits(records, dir + "/perplexity_vs_bits.png"); !msg.empty())
      plot_notes.push_back(msg);
    // The picture that explains OCS: the chosen matrix before and after the largest split.
    QuantConfig q = base;
    q.method = Method::kOcs;
    q.clip = ClipRule::parse("max");
    q.expand_ratio = rs.empty() ? 0.1 : *std::max_element(rs.begin(), rs.end());
    QuantizedModel qm = quantize_model(loaded.model, q);
    for (size_t i = 0; i < qm.matrices.size(); ++i) {
      if (qm.matrices[i].name != plot_matrix) continue;
      torch::Tensor before;
      for (const auto& [name, t] : loaded.model->named_weights()) {
        const std::string want = plot_matrix.rfind("recurrent.l", 0) == 0
                                     ? "rnn.weight_hh_l" + plot_matrix.substr(11)
                                 : plot_matrix.rfind("input.l", 0) == 0
                                     ? "rnn.weight_ih_l" + plot_matrix.substr(7)
                                 : plot_matrix == "decoder" ? "decoder.weight" : "encoder.weight";
        if (name == want) before = t;
      }
      auto split_w = apply_ocs(before.detach().cpu(), qm.tensors[i].plan);
      if (auto msg = plot_weight_histograms(plot_matrix + ", OCS r=" + std::to_string(q.expand_ratio).substr(0, 4),
                                            before.detach().cpu(), qm.matrices[i].max_abs_before,
                                            split_w, qm.matrices[i].alpha, bits,
                                            dir + "/histogram_" + plot_matrix + ".png");
          !msg.empty())
        plot_notes.push_back(msg);
    }
    std::ostringstream md;
    md << "# lmquant report\n\n"
       << "- model: `" << model_path << "` (" << loaded.model->config().describe() << ", sha256 "
       << loaded.file_sha256.substr(0, 16) << "…)\n"
       << "- corpus: " << corpus.location.name << ", split " << split << ", " << fl.tokens
       << " targets; perplexity = exp(mean NLL), eval batch 10, bptt 35, hidden state carried\n"
       << "- quantization: " << bits << " bits, " << granularity << " granularity, targets "
       << targets << "; OCS results evaluated with the folded simulation\n"
       << "- overhead: extra multiply-adds per token of the expanded OCS model\n\n"
       << markdown_table(records) << "\n**Best at " << bits << " bits: " << best->label()
       << "** (perplexity " << best->perplexity << ", " << best->delta_percent
       << "% vs float).\n\n## Plots\n\n"
       << "![perplexity vs overhead](perplexity_vs_overhead.png)\n\n"
       << "![perplexity vs bits](perplexity_vs_bits.png)\n\n"
       << "![weights before/after OCS](histogram_" << plot_matrix << ".png)\n";
    write_file_atomic(dir + "/report.md", md.str());
    write_file_atomic(dir + "/results.csv", csv(records));
    write_file_atomic(dir + "/results.json", records_json(records).dump(2) + "\n");
  });
  for (const auto& n : plot_notes) note("note: " + n);
  std::printf("report written to %s/ (report.md, results.csv, results.json, plots)\n",
              report_dir.c_str());
  return 0;
}

}  // namespace lmquant::cli
