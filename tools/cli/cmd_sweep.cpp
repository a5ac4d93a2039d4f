// lmquant sweep: the grid of src/experiment/sweep.h on one split, resumable; optionally a report
// directory from the results.
#include <cstdio>

#include "cli.h"
#include "quant/quantized_io.h"
#include "experiment/sweep.h"
#include "report/plots.h"
#include "report/report.h"
#include "util/atomic_file.h"

namespace lmquant::cli {

int cmd_sweep(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, split = "valid", bits = "3,4,5,6,8", methods = "clip,ocs",
                          clips = "max,mse", ratios = "0.01,0.02,0.05,0.1", grans = "tensor",
                          grid = "off", targets = "all", out = "sweep.jsonl", report_dir;
  SweepOptions so;
  QuantConfig base;
  RoundingFlags rf;
  long first_tokens = 0;
  po::options_description desc;
  po::options_description m("Sweep");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(), "model file (.lmq or PyTorch state_dict)")
    ("split", po::value(&split)->default_value(split),
     "train, valid or test (compare on valid; evaluate only your final choice on test)")
    ("first-tokens", po::value(&first_tokens)->default_value(0),
     "evaluate only the split's first N tokens (0: all), e.g. a selection slice of valid")
    ("bits", po::value(&bits)->default_value(bits), "comma list of bit widths")
    ("methods", po::value(&methods)->default_value(methods), "comma list: clip, ocs")
    ("clips", po::value(&clips)->default_value(clips), "comma list of clip rules")
    ("expand-ratios", po::value(&ratios)->default_value(ratios), "comma list of OCS ratios")
    ("granularity", po::value(&grans)->default_value(grans), "comma list: tensor, row, gate, group:G")
    ("grid-aware", po::value(&grid)->default_value(grid), "comma list: off, on (OCS cells)")
    ("targets", po::value(&targets)->default_value(targets), "all or a comma list")
    ("repeats", po::value(&so.repeats)->default_value(0),
     "rounding spread: re-quantize each cell K more times with alpha jittered by a seeded "
     "factor in [0.99, 1.01] per group")
    ("out", po::value(&out)->default_value(out), "results, one JSON record per line (resumable)")
    ("fresh", po::bool_switch(&so.fresh)->default_value(false),
     "discard what --out holds instead of resuming (needed to reuse it for another model, "
     "split or tokenizer)")
    ("report-dir", po::value(&report_dir)->default_value(""),
     "also write a report directory (report.md, results.csv, results.json, plots) from --out");
  // clang-format on
  desc.add(m).add(rounding_options(base, rf, true)).add(data_options(common)).add(compute_options(common));
  po::variables_map vm;
  if (!parse("sweep", "--model M [--bits 3,4,5,6,8] [--methods clip,ocs] [--out F]", desc, args,
             vm))
    return 0;
  const Split s = with_flag("--split", [&] { return parse_split(split); });
  SweepGrid g;
  auto number = [](const std::string& x) { return parse_number("", x); };
  g.bits = parse_list<int>("--bits", bits, number);
  g.methods = parse_list<Method>("--methods", methods, parse_method);
  g.clips = parse_list<ClipRule>("--clips", clips, ClipRule::parse);
  g.granularities = parse_list<Granularity>("--granularity", grans, parse_granularity);
  g.expand_ratios = parse_list<double>("--expand-ratios", ratios, number);
  g.grid_aware = parse_list<bool>("--grid-aware", grid, [](const std::string& x) {
    if (x != "on" && x != "off")
      throw std::invalid_argument("'" + x + "': valid values: off, on");
    return x == "on";
  });
  g.targets = with_flag("--targets", [&] { return parse_targets(targets); });
  g.roundings = parse_list<Rounding>("--rounding", rf.rounding, parse_rounding);
  apply_rounding_flags(base, rf);
  g.base = base;
  const auto cells = g.cells();  // validated; messages name the setting and value
  if (so.repeats < 0) throw std::invalid_argument("--repeats: give 0 or a positive count");
  const auto device = setup_compute(common);
  LoadedModel loaded = load_any_model(model_path, device);
  Corpus corpus = load_corpus(common, &loaded);
  if (first_tokens < 0) throw std::invalid_argument("--first-tokens: give 0 (all) or a count");
  EvalContext ctx(loaded, corpus, s, first_tokens);
  so.out = out;
  if (!common.quiet) so.log = [](const std::string& l) { note(l); };
  const auto records = with_flag("--out " + out, [&] { return run_sweep(ctx, cells, so); });
  std::printf("%zu cells (and the float model) in %s\n%s", cells.size(), out.c_str(),
              common.quiet ? "" : console_table(records).c_str());
  if (report_dir.empty()) return 0;
  check_same_provenance(records);
  write_report_dir(report_dir, [&](const std::string& dir) {
    for (const auto& msg :
         {plot_perplexity_vs_bits(records, dir + "/perplexity_vs_bits.png"),
          plot_perplexity_vs_overhead(records, dir + "/perplexity_vs_overhead.png")})
      if (!msg.empty()) note("note: " + msg);
    write_file_atomic(dir + "/report.md",
                      "# lmquant sweep\n\n- model: `" + model_path + "` (sha256 " +
                          loaded.file_sha256.substr(0, 16) + "…)\n- split: " + split +
                          "\n\n" + markdown_table(records) +
                          "\n![perplexity vs bits](perplexity_vs_bits.png)\n\n"
                          "![perplexity vs overhead](perplexity_vs_overhead.png)\n");
    write_file_atomic(dir + "/results.csv", csv(records));
    write_file_atomic(dir + "/results.json", records_json(records).dump(1) + "\n");
  });
  std::printf("report written to %s/\n", report_dir.c_str());
  return 0;
}

}  // namespace lmquant::cli
