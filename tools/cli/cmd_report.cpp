// lmquant [report]: the main job (src/experiment/main_job.h). `lmquant --corpus wikitext2
// --bits 4` resolves the corpus, takes --model or the cached default model (trained first when
// missing), selects among the candidates on validation, reports test, prints the table and the
// recommendation, and writes the report directory whole.
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "experiment/main_job.h"
#include "quant/quantized_io.h"
#include "report/report.h"

namespace fs = std::filesystem;

namespace lmquant::cli {
namespace {

// The path relative to where the command ran (as given when that fails).
std::string display_path(const std::string& p) {
  std::error_code ec;
  const auto rel = fs::relative(p, fs::current_path(), ec);
  return ec || rel.empty() ? p : rel.string();
}

}  // namespace

int cmd_report(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, report_dir = "lmquant-report", preset = "small",
                          plot_matrix = "recurrent.l0", select_split = "valid",
                          report_split = "test", curve_bits;
  MainJobOptions job;
  options::QuantFlags f;  // the candidates' defaults:
  f.clip = "max,mse,aciq,kl,percentile:99.99", f.granularity = "tensor,row";
  f.rounding = "nearest,gptq", f.expand_ratio = "0.01,0.02,0.05,0.1";
  int64_t epochs = 3;
  po::options_description desc;
  po::options_description m("Model");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->default_value(""),
     "model file (.lmq or a PyTorch file); default: the cached default model, trained first "
     "when there is none")
    ("preset", po::value(&preset)->default_value(preset), "default model's preset: small, medium, large")
    ("epochs", po::value(&epochs)->default_value(epochs),
     "default model's training epochs (learning rate 20, the last epoch 5)");
  po::options_description q = options::candidate_options(f);
  q.add_options()
    ("no-rows", po::bool_switch()->default_value(false)->notifier([&](bool v) { job.rows = !v; }),
     "leave out the bits-per-row family (the embedding's and decoder's rows at 1..7 bits on the "
     "midrise grid, at the storage of the plain per-row candidate)");
  po::options_description s("Selection (choose on validation, report on test)");
  s.add_options()
    ("select-split", po::value(&select_split)->default_value(select_split),
     "split the candidates are compared on; test only with a warning in the report's title")
    ("select-tokens", po::value(&job.select_tokens)->default_value(job.select_tokens),
     "compare candidates on the first N tokens of the selection split (0: all of it)")
    ("report-split", po::value(&report_split)->default_value(report_split),
     "split the chosen rows are reported on")
    ("no-kl", po::bool_switch()->default_value(false)->notifier([&](bool v) { job.divergence = !v; }),
     "skip the reported rows' divergence from the float model (KL, top-1 agreement)")
    ("curve-bits", po::value(&curve_bits)->default_value(""),
     "bit widths of the bits curve (default: bits-1, bits+1, bits+2, 8)");
  po::options_description o("Output");
  o.add_options()
    ("report-dir", po::value(&report_dir)->default_value(report_dir),
     "report directory (report.md, results.csv, results.json, *.png), replaced whole")
    ("plot-matrix", po::value(&plot_matrix)->default_value(plot_matrix),
     "matrix whose weight histogram before/after OCS is plotted");
  // clang-format on
  desc.add(m)
      .add(q)
      .add(s)
      .add(o)
      .add(data_options(common))
      .add(model_file_options(common))
      .add(compute_options(common));
  po::variables_map vm;
  if (!parse("[report]", "[--corpus wikitext2] [--bits 4] [--model M] [--report-dir DIR]", desc,
             args, vm))
    return 0;
  // Validate everything before any work.
  job.select_split = with_flag("--select-split", [&] { return parse_split(select_split); });
  job.report_split = with_flag("--report-split", [&] { return parse_split(report_split); });
  options::set_candidates(f, job);
  auto number = [](const std::string& x) { return parse_number("", x); };
  if (!curve_bits.empty()) job.curve_bits = parse_list<int>("--curve-bits", curve_bits, number);
  job.validate();  // its messages name the setting and value
  with_flag("--preset", [&] { return preset_config(preset); });
  check_writable_dir("--report-dir", report_dir);  // fail now, not after the evaluations
  const auto device = setup_compute(common);
  LoadedModel loaded;
  if (!model_path.empty()) loaded = load_model_file(model_path, common, device);
  Corpus corpus = load_corpus(common, model_path.empty() ? nullptr : &loaded);
  if (model_path.empty()) {
    TrainOptions t;
    t.progress = progress_bar(common.quiet);
    t.log = [](const std::string& l) { note(l); };
    const std::string cache = default_cache_dir();
    if (std::filesystem::exists(default_model_path(corpus, cache, preset)))
      note("no --model given: using the cached default model " +
           default_model_path(corpus, cache, preset));
    else
      note(default_model_plan(corpus, cache, preset, epochs));
    model_path = ensure_default_model(corpus, cache, preset, epochs, device, t);
    loaded = load_model_file(model_path, common, device);
    check_vocab_matches(loaded, corpus.vocab);
  }
  job.progress = progress_bar(common.quiet);
  if (!common.quiet) job.log = [](const std::string& l) { note(l); };
  const MainJobResult res = run_main_job(loaded, corpus, job);

  const Record& R = res.recommendation();
  std::printf("%s, %s, %d bits\n%s\n\n", loaded.model->config().describe().c_str(),
              corpus.location.name.c_str(), job.bits, res.selection_line().c_str());
  std::printf("candidates on the selection stream:\n%s\nreported on %s:\n%s\n",
              console_table(res.candidates).c_str(), R.source.split.c_str(),
              console_table(res.reported).c_str());
  std::printf("recommended at %d bits: %s (%s perplexity %.2f, %s vs float)\n", job.bits,
              R.label().c_str(), R.source.split.c_str(), R.perplexity(), delta_text(R).c_str());
  if (res.runner_up > 0) {
    const auto& d = res.recommended_vs_runner_up;
    std::printf("vs runner-up %s: %s\n",
                res.reported[static_cast<size_t>(res.runner_up)].label().c_str(),
                interval_text(d).c_str());
  }
  if (res.cheaper_alternative > 0)
    std::printf("cheaper alternative (no OCS overhead, not significantly worse): %s\n",
                res.reported[static_cast<size_t>(res.cheaper_alternative)].label().c_str());
  for (const auto& n :
       write_main_report(report_dir, res, loaded, job, display_path(model_path), plot_matrix))
    note("note: " + n);
  std::printf("report written to %s/ (report.md, results.csv, results.json, plots) in %.0f s\n",
              report_dir.c_str(), res.seconds);
  return 0;
}

}  // namespace lmquant::cli
