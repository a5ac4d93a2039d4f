#include "experiment/sweep.h"

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>

#include "report/report.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"

namespace lmquant {

std::vector<QuantConfig> SweepGrid::cells() const {
  std::vector<QuantConfig> out;
  for (int b : bits)
    for (Method m : methods)
      for (const auto& c : clips)
        for (Granularity g : granularities)
          for (Rounding rd : roundings) {
            QuantConfig q = base;
            q.bits = b;
            q.method = m;
            q.clip = c;
            q.granularity = g;
            q.targets = targets;
            q.rounding = rd;
            if (rd != Rounding::kGptq) q.gptq_decoder = false;  // a gptq setting only
            if (m == Method::kFloat)
              throw std::invalid_argument("a sweep cell's method is clip or ocs");
            if (m == Method::kClip) {
              q.validate();
              out.push_back(q);
              continue;
            }
            for (double r : expand_ratios)
              for (bool ga : grid_aware) {
                if (ga && rd == Rounding::kGptq) continue;  // two rounding rules: not combined
                QuantConfig o = q;
                o.expand_ratio = r;
                o.grid_aware = ga;
                o.validate();
                out.push_back(o);
              }
          }
  return out;
}

namespace {

// The records a results file holds (a torn last line from an older lmquant is dropped).
std::vector<Record> read_results(const std::string& path) {
  std::vector<Record> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back(Record::from_json(nlohmann::json::parse(line)));
    } catch (const std::exception&) {
      // a torn or foreign line: the cell (if any) runs again
    }
  }
  return out;
}

std::string lines_of(const std::vector<Record>& records) {
  std::string s;
  for (const auto& r : records) s += r.to_json().dump() + "\n";
  return s;
}

}  // namespace

std::vector<Record> run_sweep(const EvalContext& ctx, const std::vector<QuantConfig>& cells,
                              const SweepOptions& o) {
  std::vector<Record> kept = o.fresh ? std::vector<Record>{} : read_results(o.out);
  for (const auto& r : kept) {
    const std::string f = r.source.differs_from(ctx.source());
    if (!f.empty())
      throw std::runtime_error(
          o.out + " holds results of another provenance: its " + f + " is '" +
          r.source.value_of(f) + "' but this sweep's is '" + ctx.source().value_of(f) +
          "'; write to another results file, or start it afresh (its results are then lost)");
  }
  // A cell counts as done with the same configuration and at least the repeats asked for.
  std::map<std::string, size_t> done;
  std::vector<Record> unique;
  for (auto& r : kept)
    if (done.emplace(r.config.to_json().dump(), unique.size()).second) unique.push_back(r);
  kept = std::move(unique);
  auto is_done = [&](const QuantConfig& q) {
    auto it = done.find(q.to_json().dump());
    return it != done.end() &&
           static_cast<int>(kept[it->second].repeat_perplexities.size()) >= o.repeats;
  };
  // Fails now, not after the first cell, when the file cannot be written.
  write_file_atomic(o.out, lines_of(kept));
  size_t todo = 0;
  for (const auto& q : cells) todo += is_done(q) ? 0 : 1;
  QuantConfig float_config;
  float_config.method = Method::kFloat;
  if (todo && !done.count(float_config.to_json().dump())) {
    kept.insert(kept.begin(), ctx.float_record());
    done.clear();
    for (size_t i = 0; i < kept.size(); ++i) done.emplace(kept[i].config.to_json().dump(), i);
    write_file_atomic(o.out, lines_of(kept));
  }
  size_t finished = 0, n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (const auto& q : cells) {
      ++n;
      if (is_done(q)) continue;
      Record r = ctx.run(q, o.repeats);
      const std::string key = q.to_json().dump();
      if (auto it = done.find(key); it != done.end()) {
        kept[it->second] = r;
      } else {
        done.emplace(key, kept.size());
        kept.push_back(r);
      }
      write_file_atomic(o.out, lines_of(kept));
      ++finished;
      if (o.log) {
        const double el =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const int eta = static_cast<int>(el / static_cast<double>(finished) *
                                         static_cast<double>(todo - finished));
        char buf[160];
        std::snprintf(buf, sizeof buf, "[%zu/%zu] %s: perplexity %.2f, %s (%d s, ETA %d min %02d s)",
                      n, cells.size(), q.label().c_str(), r.perplexity(), delta_text(r).c_str(),
                      static_cast<int>(el), eta / 60, eta % 60);
        o.log(buf);
      }
    }
  } catch (const Interrupted& e) {
    const size_t cells_kept = kept.empty() ? 0 : kept.size() - 1;  // less the float record
    throw Interrupted(std::string(e.what()) + "; " + std::to_string(cells_kept) +
                      " finished cells are kept in " + o.out +
                      " (with the float evaluation): run the same command again to resume");
  }
  return kept;
}

}  // namespace lmquant
