// lmquant sweep: the grid of src/experiment/sweep.h on one split, resumable, whole or one shard
// of it (--shard I/N, or a Slurm array task's); --list prints the grid; `sweep merge`
// (cmd_sweep_merge.cpp) puts the shards' results files back together. Optionally a report
// directory from the results.
#include <algorithm>
#include <cstdio>

#include "cli.h"
#include "experiment/sweep.h"
#include "quant/quantized_io.h"
#include "report/report.h"

namespace lmquant::cli {

int cmd_sweep_merge(const std::vector<std::string>& args);

namespace {

// "{shard}" in a results file's name stands for the shard ("shard-I-of-N").
std::string expand_shard(std::string path, const Shard& sh) {
  for (auto at = path.find("{shard}"); at != std::string::npos; at = path.find("{shard}"))
    path.replace(at, 7, sh.file_tag());
  return path;
}

}  // namespace

int cmd_sweep(const std::vector<std::string>& args) {
  if (!args.empty() && args.front() == "merge")
    return cmd_sweep_merge(std::vector<std::string>(args.begin() + 1, args.end()));
  CommonOptions common;
  options::QuantFlags f;  // the grid's defaults:
  f.bits = "3,4,5,6,8", f.method = "clip,ocs", f.clip = "max,mse";
  f.expand_ratio = "0.01,0.02,0.05,0.1";
  std::string model_path, split = "valid", out = "sweep.jsonl", report_dir, shard;
  bool list = false, no_kl = false;
  SweepOptions so;
  long first_tokens = 0;
  po::options_description m("Sweep");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path), "model file (.lmq or a PyTorch file); required but with --list")
    ("split", po::value(&split)->default_value(split),
     "train, valid or test (compare on valid; evaluate only your final choice on test)")
    ("first-tokens", po::value(&first_tokens)->default_value(0),
     "evaluate only the split's first N tokens (0: all), e.g. a selection slice of valid")
    ("repeats", po::value(&so.repeats)->default_value(0),
     "rounding spread: re-quantize each cell K more times with alpha jittered by a seeded "
     "factor in [0.99, 1.01] per group")
    ("out", po::value(&out)->default_value(out),
     "results, one JSON record per line (resumable); {shard} in it stands for shard-I-of-N")
    ("shard", po::value(&shard)->default_value(""),
     "run only shard I of N (the cells dealt to it in snake order: see --list), e.g. 0/4; "
     "default: the Slurm array task's (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of "
     "SLURM_ARRAY_TASK_COUNT), else all")
    ("list", po::bool_switch(&list)->default_value(false),
     "print the grid's cells (index, shard, label) and exit; with a shard, only its cells")
    ("fresh", po::bool_switch(&so.fresh)->default_value(false),
     "discard what --out holds instead of resuming (needed to reuse it for another model, "
     "split or tokenizer)")
    ("no-kl", po::bool_switch(&no_kl)->default_value(false),
     "skip the divergence from the float model (KL and top-1 agreement per cell): about half "
     "of each cell's evaluation time")
    ("report-dir", po::value(&report_dir)->default_value(""),
     "also write a report directory (report.md, results.csv, results.json, plots) from --out");
  // clang-format on
  po::options_description desc;
  desc.add(m)
      .add(options::quantization_options(f, options::Form::kList))
      .add(options::rounding_options(f, options::Form::kList))
      .add(options::row_width_options(f))
      .add(data_options(common))
      .add(model_file_options(common))
      .add(compute_options(common));
  po::variables_map vm;
  if (!parse("sweep",
             "--model M [--bits 3,4,5,6,8] [--methods clip,ocs] [--out F] [--shard I/N] [--list]\n"
             "       lmquant sweep merge SHARD.jsonl... --out F.jsonl",
             desc, args, vm))
    return 0;
  const Split s = with_flag("--split", [&] { return parse_split(split); });
  const auto cells = options::grid_of(f).cells();  // validated; errors name the setting
  if (so.repeats < 0) throw std::invalid_argument("--repeats: give 0 or a positive count");
  // The shard: --shard, else the Slurm array task's, else the whole grid.
  bool from_slurm = false;
  if (!shard.empty()) {
    so.shard = with_flag("--shard", [&] { return parse_shard(shard); });
  } else if (const auto sh = shard_from_slurm()) {
    so.shard = *sh;
    from_slurm = true;
  }
  if (list) {
    for (size_t i = 0; i < cells.size(); ++i)
      if (so.shard.owns(static_cast<int64_t>(i)))
        std::printf("%zu\t%lld/%lld\t%s\n", i,
                    static_cast<long long>(Shard::owner(static_cast<int64_t>(i), so.shard.count)),
                    static_cast<long long>(so.shard.count), cells[i].label().c_str());
    return 0;
  }
  if (model_path.empty()) throw std::invalid_argument("--model: give the model file to sweep");
  if (so.shard.sharded()) {
    if (from_slurm && out.find("{shard}") == std::string::npos)
      throw std::invalid_argument(
          "--out " + out + ": this Slurm array task is shard " + so.shard.to_string() +
          " (from SLURM_ARRAY_TASK_ID), and every shard needs its own results file: put "
          "{shard} in --out (e.g. results.{shard}.jsonl), or pass --shard I/N with a file of "
          "its own");
    note("sweep: shard " + so.shard.to_string() + " (from " +
         (from_slurm ? std::string("SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT") : "--shard") +
         "): the cells dealt to it in snake order (see --list)");
  }
  out = expand_shard(out, so.shard);
  if (first_tokens < 0) throw std::invalid_argument("--first-tokens: give 0 (all) or a count");
  const auto device = setup_compute(common);
  LoadedModel loaded = load_model_file(model_path, common, device);
  Corpus corpus = load_corpus(common, &loaded);
  EvalContext ctx(loaded, corpus, s, first_tokens);
  ctx.set_divergence(!no_kl);
  so.out = out;
  if (!common.quiet) so.log = [](const std::string& l) { note(l); };
  const auto records = with_flag("--out " + out, [&] { return run_sweep(ctx, cells, so); });
  const auto n_cells =
      std::count_if(records.begin(), records.end(), [](const Record& r) { return !r.is_float(); });
  std::printf("%zu cells (and the float model) in %s\n%s", static_cast<size_t>(n_cells),
              out.c_str(), common.quiet ? "" : console_table(records).c_str());
  if (report_dir.empty()) return 0;
  for (const auto& msg : write_sweep_report(report_dir, records, model_path)) note("note: " + msg);
  std::printf("report written to %s/\n", report_dir.c_str());
  return 0;
}

}  // namespace lmquant::cli
