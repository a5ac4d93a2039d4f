// lmquant sweep: the grid bits x methods x clips x expand ratios x granularities x grid-aware,
// each cell quantized and evaluated with the folded simulation (one evaluation per cell). Cells
// are appended to --out (JSON lines) as they finish, each line written whole and flushed, so an
// interrupted sweep resumes where it stopped: finished cells are read back and skipped.
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli.h"
#include "lm/evaluate.h"
#include "quant/quantize_model.h"

namespace lmquant::cli {
namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) if (!item.empty()) out.push_back(item);
  if (out.empty()) throw std::invalid_argument("empty list '" + s + "'");
  return out;
}

}  // namespace

int cmd_sweep(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, split = "test", bits = "3,4,5,6,8", methods = "clip,ocs",
              clips = "max,mse", ratios = "0.01,0.02,0.05,0.1", grans = "tensor", grid = "off",
              targets = "all", out = "sweep.jsonl";
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
    ("out", po::value(&out)->default_value(out), "results, one JSON object per line (resumable)");
  // clang-format on
  desc.add(m).add(data_options(common)).add(compute_options(common));
  po::variables_map vm;
  if (!parse("sweep", "--model M [--bits 3,4,5,6,8] [--methods clip,ocs] [--out F]", desc, args, vm))
    return 0;
  const Split s = parse_split(split);
  // The grid, validated before any work.
  std::vector<QuantConfig> cells;
  for (const auto& b : split_list(bits))
    for (const auto& meth : split_list(methods))
      for (const auto& c : split_list(clips))
        for (const auto& g : split_list(grans)) {
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
          for (const auto& r : split_list(ratios))
            for (const auto& ga : split_list(grid)) {
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
  {
    std::ifstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      try {
        auto j = nlohmann::json::parse(line);
        done.insert(j.at("config").dump());
      } catch (const std::exception&) {
        // a torn last line from a kill: ignored, the cell runs again
      }
    }
  }
  const auto device = setup_compute(common);
  Corpus corpus = load_corpus(common);
  LoadedModel loaded = load_model(model_path, device);
  check_vocab_matches(loaded, corpus.vocab);
  const EvalResult fl = evaluate(loaded.model, corpus.split(s));
  std::ofstream sink(out, std::ios::app);
  if (!sink) throw std::runtime_error("cannot write " + out);
  size_t n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& q : cells) {
    ++n;
    const std::string key = q.to_json().dump();
    if (done.count(key)) continue;
    QuantizedModel qm = quantize_model(loaded.model, q);
    const EvalResult r = evaluate(qm.folded, corpus.split(s));
    nlohmann::json j = {{"config", q.to_json()},
                        {"label", q.label()},
                        {"split", split},
                        {"perplexity", r.perplexity},
                        {"float_perplexity", fl.perplexity},
                        {"delta_percent", 100 * (r.perplexity / fl.perplexity - 1)},
                        {"size_bits", qm.size_bits},
                        {"params_overhead_percent",
                         100.0 * (qm.params_after - qm.params_before) / qm.params_before},
                        {"macs_overhead_percent",
                         100.0 * (qm.macs_after - qm.macs_before) / qm.macs_before},
                        {"seconds", qm.seconds + r.seconds}};
    j["matrices"] = nlohmann::json::array();
    for (const auto& mr : qm.matrices) j["matrices"].push_back(mr.to_json());
    sink << j.dump() << "\n";
    sink.flush();
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!common.quiet)
      note("[" + std::to_string(n) + "/" + std::to_string(cells.size()) + "] " + q.label() +
           ": perplexity " + std::to_string(r.perplexity) + " (" + std::to_string(int(el)) + " s)");
  }
  std::printf("%zu cells in %s (float perplexity %.2f)\n", cells.size(), out.c_str(), fl.perplexity);
  return 0;
}

}  // namespace lmquant::cli
