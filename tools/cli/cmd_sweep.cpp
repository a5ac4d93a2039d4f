// lmquant sweep: the grid bits x methods x clips x expand ratios x granularities x grid-aware,
// each cell quantized and evaluated with the folded simulation (one evaluation per cell). After
// each cell --out (JSON lines) is rewritten whole (temporary file + rename), so a killed or
// interrupted sweep keeps every finished cell and resumes where it stopped: finished cells are
// read back and skipped.
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli.h"
#include "lm/evaluate.h"
#include "quant/quantize_model.h"
#include "report/plots.h"
#include "report/report.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"

namespace lmquant::cli {
int cmd_sweep(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, split = "test", bits = "3,4,5,6,8", methods = "clip,ocs",
                          clips = "max,mse", ratios = "0.01,0.02,0.05,0.1", grans = "tensor",
                          grid = "off", targets = "all", out = "sweep.jsonl", report_dir;
  po::options_description desc;
  po::options_description m("Sweep");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(), "model file (.lmq or PyTorch state_dict)")
    ("split", po::value(&split)->default_value(split), "train, valid or test")
    ("bits", po::value(&bits)->default_value(bits), "comma list of bit widths")
    ("methods", po::value(&methods)->default_value(methods), "comma list: clip, ocs")
    ("clips", po::value(&clips)->default_value(clips), "comma list of clip rules")
    ("expand-ratios", po::value(&ratios)->default_value(ratios), "comma list of OCS ratios")
    ("granularity", po::value(&grans)->default_value(grans), "comma list: tensor, row, gate")
    ("grid-aware", po::value(&grid)->default_value(grid), "comma list: off, on (OCS cells)")
    ("targets", po::value(&targets)->default_value(targets), "all or a comma list")
    ("out", po::value(&out)->default_value(out), "results, one JSON object per line (resumable)")
    ("report-dir", po::value(&report_dir)->default_value(""),
     "also write a report directory (report.md, results.csv, results.json, plots) from --out");
  // clang-format on
  desc.add(m).add(data_options(common)).add(compute_options(common));
  po::variables_map vm;
  if (!parse("sweep", "--model M [--bits 3,4,5,6,8] [--methods clip,ocs] [--out F]", desc, args,
             vm))
    return 0;
  const Split s = parse_split(split);
  // The grid, validated before any work.
  std::vector<QuantConfig> cells;
  for (const auto& b : split_list(bits, "--bits"))
    for (const auto& meth : split_list(methods, "--methods"))
      for (const auto& c : split_list(clips, "--clips"))
        for (const auto& g : split_list(grans, "--granularity")) {
          QuantConfig q;
          q.bits = std::stoi(b);
          q.method = parse_method(meth);
          q.clip = ClipRule::parse(c);
          q.granularity = parse_granularity(g);
          q.targets = parse_targets(targets);
          if (q.method == Method::kClip) {
            q.validate();
            cells.push_back(q);
            continue;
          }
          for (const auto& r : split_list(ratios, "--expand-ratios"))
            for (const auto& ga : split_list(grid, "--grid-aware")) {
              if (ga != "on" && ga != "off")
                throw std::invalid_argument("--grid-aware " + ga + ": valid values: off, on");
              QuantConfig o = q;
              o.expand_ratio = std::stod(r);
              o.grid_aware = ga == "on";
              o.validate();
              cells.push_back(o);
            }
        }
  std::set<std::string> done;
  std::string kept;  // the finished cells' lines, rewritten whole after each cell
  {
    std::ifstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      try {
        auto j = nlohmann::json::parse(line);
        if (done.insert(j.at("config").dump()).second) kept += line + "\n";
      } catch (const std::exception&) {
        // a torn line (from an older, appending lmquant): dropped, the cell runs again
      }
    }
  }
  write_file_atomic(out, kept);  // fails now, not after the first cell, when --out is unwritable
  const auto device = setup_compute(common);
  LoadedModel loaded = load_model(model_path, device);
  Corpus corpus = load_corpus(common, &loaded);
  size_t todo = 0;
  for (const auto& q : cells) todo += done.count(q.to_json().dump()) ? 0 : 1;
  EvalResult fl;
  size_t n = 0, finished = 0;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    if (todo) fl = evaluate(loaded.model, corpus.split(s));
    for (const auto& q : cells) {
      ++n;
      const std::string key = q.to_json().dump();
      if (done.count(key)) continue;
      QuantizedModel qm = quantize_model(loaded.model, q);
      const EvalResult r = evaluate(qm.folded, corpus.split(s));
      nlohmann::json j = {
          {"config", q.to_json()},
          {"label", q.label()},
          {"split", split},
          {"tokenizer", corpus.tokenizer},
          {"tokens_per_word", corpus.tokens_per_word(s)},
          {"perplexity", r.perplexity},
          {"float_perplexity", fl.perplexity},
          {"word_perplexity",
           word_normalised_perplexity(r.loss, corpus.tokens(s), corpus.words(s))},
          {"delta_percent", 100 * (r.perplexity / fl.perplexity - 1)},
          {"size_bits", qm.size_bits},
          {"params_overhead_percent",
           100.0 * (qm.params_after - qm.params_before) / qm.params_before},
          {"macs_overhead_percent", 100.0 * (qm.macs_after - qm.macs_before) / qm.macs_before},
          {"seconds", qm.seconds + r.seconds}};
      j["matrices"] = nlohmann::json::array();
      for (const auto& mr : qm.matrices) j["matrices"].push_back(mr.to_json());
      kept += j.dump() + "\n";
      write_file_atomic(out, kept);
      const double el =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++finished;
      const int eta = static_cast<int>(el / finished * static_cast<double>(todo - finished));
      if (!common.quiet)
        note("[" + std::to_string(n) + "/" + std::to_string(cells.size()) + "] " + q.label() +
             ": perplexity " + std::to_string(r.perplexity) + " (" + std::to_string(int(el)) +
             " s, ETA " + std::to_string(eta / 60) + " min)");
    }
  } catch (const Interrupted& e) {
    throw Interrupted(std::string(e.what()) + "; " + std::to_string(done.size() + finished) +
                      " finished cells are kept in " + out +
                      ": run the same command again to resume");
  }
  std::printf("%zu cells in %s\n", cells.size(), out.c_str());
  if (report_dir.empty()) return 0;
  std::vector<Record> records;
  std::ifstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    try {
      Record r = Record::from_json(nlohmann::json::parse(line));
      r.model = model_path;
      r.model_sha256 = loaded.file_sha256;
      r.corpus = corpus.location.name;
      if (records.empty()) {
        Record f = r;
        f.method = "float", f.clip = "", f.bits = 32, f.granularity = "", f.expand_ratio = 0;
        f.grid_aware = false, f.perplexity = r.float_perplexity, f.delta_percent = 0;
        f.params_overhead_percent = f.macs_overhead_percent = 0;
        f.matrices = nlohmann::json::array();
        records.push_back(f);
      }
      records.push_back(r);
    } catch (const std::exception&) {
    }
  }
  write_report_dir(report_dir, [&](const std::string& dir) {
    for (const auto& msg :
         {plot_perplexity_vs_bits(records, dir + "/perplexity_vs_bits.png"),
          plot_perplexity_vs_overhead(records, dir + "/perplexity_vs_overhead.png")})
      if (!msg.empty()) note("note: " + msg);
    write_file_atomic(dir + "/report.md",
                      "# lmquant sweep\n\n- model: `" + model_path + "`\n- split: " + split +
                          "\n\n" + markdown_table(records) +
                          "\n![perplexity vs bits](perplexity_vs_bits.png)\n\n"
                          "![perplexity vs overhead](perplexity_vs_overhead.png)\n");
    write_file_atomic(dir + "/results.csv", csv(records));
    write_file_atomic(dir + "/results.json", records_json(records).dump(2) + "\n");
  });
  std::printf("report written to %s/\n", report_dir.c_str());
  return 0;
}

}  // namespace lmquant::cli
