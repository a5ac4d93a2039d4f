#include "experiment/sweep.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "report/plots.h"
#include "report/report.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"
#include "util/json_check.h"
#include "util/sha256.h"

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
            if (rd != Rounding::kGptq)  // gptq settings only
              q.gptq_decoder = q.fisher_decoder = q.gptq_embedding = false;
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

std::string Shard::to_string() const { return std::to_string(index) + "/" + std::to_string(count); }

std::string Shard::file_tag() const {
  return "shard-" + std::to_string(index) + "-of-" + std::to_string(count);
}

Shard parse_shard(const std::string& text) {
  const auto bad = [&] {
    return std::invalid_argument("'" + text +
                                 "': give I/N, shard I of N with 0 <= I < N (e.g. 0/4)");
  };
  const auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) throw bad();
  const std::string a = text.substr(0, slash), b = text.substr(slash + 1);
  const auto digits = [](const std::string& x) {
    return x.size() <= 9 && x.find_first_not_of("0123456789") == std::string::npos;
  };
  if (!digits(a) || !digits(b)) throw bad();
  Shard sh;
  sh.index = std::stoll(a);
  sh.count = std::stoll(b);
  if (sh.count < 1 || sh.index >= sh.count) throw bad();
  return sh;
}

std::optional<Shard> shard_from_slurm(const std::function<const char*(const char*)>& getenv) {
  const auto get = [&](const char* name) -> const char* {
    return getenv ? getenv(name) : std::getenv(name);
  };
  const char* id = get("SLURM_ARRAY_TASK_ID");
  const char* count = get("SLURM_ARRAY_TASK_COUNT");
  if (!id || !count || !*id || !*count) return std::nullopt;
  const char* min = get("SLURM_ARRAY_TASK_MIN");
  const auto number = [](const char* name, const char* v) {
    const std::string x = v;
    if (x.empty() || x.size() > 9 || x.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument(std::string(name) + "='" + x + "' is not a task number");
    return std::stoll(x);
  };
  const int64_t i = number("SLURM_ARRAY_TASK_ID", id);
  const int64_t n = number("SLURM_ARRAY_TASK_COUNT", count);
  const int64_t lo = min && *min ? number("SLURM_ARRAY_TASK_MIN", min) : 0;
  if (n < 1 || i < lo || i - lo >= n)
    throw std::invalid_argument(
        "SLURM_ARRAY_TASK_ID=" + std::string(id) + " with SLURM_ARRAY_TASK_MIN=" +
        std::to_string(lo) + " and SLURM_ARRAY_TASK_COUNT=" + std::string(count) +
        " is no shard: a sharded sweep needs a contiguous array (--array=0-" +
        std::to_string(n - 1) + "), or pass --shard I/N");
  Shard sh;
  sh.index = i - lo;
  sh.count = n;
  return sh;
}

std::string grid_sha256(const std::vector<QuantConfig>& cells) {
  std::string all;
  for (const auto& q : cells) all += q.to_json().dump() + "\n";
  return sha256_bytes(all);
}

namespace {

// A results file's line parsed, its numbers checked (util/json_check.h).
nlohmann::json checked_json(const std::string& line) {
  auto j = nlohmann::json::parse(line);
  check_json_numbers(j, "record");
  return j;
}

// The records a results file holds (a torn last line from an older lmquant is dropped).
std::vector<Record> read_results(const std::string& path) {
  std::vector<Record> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back(Record::from_json(checked_json(line)));
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
    // Two array tasks must never share a file: each rewrites it whole after every cell.
    if (o.shard.sharded() && !r.sweep.empty() &&
        (r.sweep.shards != o.shard.count || r.sweep.shard != o.shard.index))
      throw std::runtime_error(
          o.out + " holds " + r.label() + " of shard " + std::to_string(r.sweep.shard) + "/" +
          std::to_string(r.sweep.shards) + ", and this is shard " + o.shard.to_string() +
          ": each shard writes its own results file (put {shard} in --out, e.g. "
          "results.{shard}.jsonl)");
  }
  // Each cell's place in the grid, and the tag its record carries.
  const std::string grid = grid_sha256(cells);
  std::map<std::string, int64_t> index_of;
  std::vector<std::string> labels;
  for (size_t i = 0; i < cells.size(); ++i) {
    index_of.emplace(cells[i].to_json().dump(), static_cast<int64_t>(i));
    labels.push_back(cells[i].label());
  }
  const auto tag = [&](Record& r) {
    const auto it = index_of.find(r.asked.to_json().dump());
    if (!r.is_float() && it == index_of.end()) return;  // a cell of another grid: left as it is
    r.sweep.grid_sha256 = grid;
    r.sweep.index = r.is_float() ? -1 : it->second;
    r.sweep.cells = static_cast<int64_t>(cells.size());
    r.sweep.shard = o.shard.index;
    r.sweep.shards = o.shard.count;
    r.sweep.grid = r.is_float() ? labels : std::vector<std::string>{};
  };
  // A cell counts as done with the same configuration (as asked) and at least the repeats asked
  // for.
  std::map<std::string, size_t> done;
  std::vector<Record> unique;
  for (auto& r : kept)
    if (done.emplace(r.asked.to_json().dump(), unique.size()).second) unique.push_back(r);
  kept = std::move(unique);
  for (auto& r : kept) tag(r);
  auto is_done = [&](const QuantConfig& q) {
    auto it = done.find(q.to_json().dump());
    return it != done.end() &&
           static_cast<int>(kept[it->second].repeat_perplexities.size()) >= o.repeats;
  };
  // Fails now, not after the first cell, when the file cannot be written.
  write_file_atomic(o.out, lines_of(kept));
  size_t todo = 0, owned = 0;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (!o.shard.owns(static_cast<int64_t>(i))) continue;
    ++owned;
    todo += is_done(cells[i]) ? 0 : 1;
  }
  QuantConfig float_config;
  float_config.method = Method::kFloat;
  if (todo && !done.count(float_config.to_json().dump())) {
    kept.insert(kept.begin(), ctx.float_record());
    tag(kept.front());
    done.clear();
    for (size_t i = 0; i < kept.size(); ++i) done.emplace(kept[i].asked.to_json().dump(), i);
    write_file_atomic(o.out, lines_of(kept));
  }
  size_t finished = 0, n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    for (size_t i = 0; i < cells.size(); ++i) {
      if (!o.shard.owns(static_cast<int64_t>(i))) continue;
      const QuantConfig& q = cells[i];
      ++n;
      if (is_done(q)) continue;
      Record r = ctx.run(q, o.repeats);
      tag(r);
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
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "[%zu/%zu%s] cell %zu %s: perplexity %.2f, %s (%d s, ETA %d min %02d s)", n,
                      owned, o.shard.sharded() ? (" of shard " + o.shard.to_string()).c_str() : "",
                      i, q.label().c_str(), r.perplexity(), delta_text(r).c_str(),
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

namespace {

// Two evaluations of one cell agree when their numbers do (not their timings).
bool same_numbers(const Record& a, const Record& b) {
  return a.eval.loss == b.eval.loss && a.eval.tokens == b.eval.tokens &&
         a.repeat_perplexities == b.repeat_perplexities;
}

}  // namespace

std::vector<Record> merge_sweep_shards(const std::vector<std::string>& paths) {
  if (paths.empty()) throw std::runtime_error("nothing to merge: name the shards' results files");
  struct Found {
    Record record;
    std::string where;  // "FILE:LINE"
  };
  std::vector<Found> all;
  std::vector<std::string> problems;
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open it (no such file, or unreadable)");
    std::string line;
    for (int64_t no = 1; std::getline(in, line); ++no) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = path + ":" + std::to_string(no);
      try {
        Found f{Record::from_json(checked_json(line)), where};
        if (f.record.sweep.empty())
          problems.push_back("foreign record at " + where + " (" + f.record.label() +
                             "): not written by a sweep (or by an lmquant before sharded sweeps): "
                             "it has no place in a grid");
        else
          all.push_back(std::move(f));
      } catch (const std::exception&) {
        problems.push_back("foreign line at " + where + ": not a record (a torn or foreign line)");
      }
    }
  }
  if (all.empty()) {
    problems.push_back("no sweep records in " + std::to_string(paths.size()) + " file(s)");
    std::string msg = "cannot merge:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw std::runtime_error(msg);
  }
  // The grid: the one of the first float record (else of the first record).
  const Found* ref = &all.front();
  for (const auto& f : all)
    if (f.record.is_float()) {
      ref = &f;
      break;
    }
  const SweepCell& g = ref->record.sweep;
  std::vector<const Found*> cell(static_cast<size_t>(g.cells), nullptr);
  const Found* flt = nullptr;
  std::vector<std::string> labels = g.grid;
  for (const auto& f : all) {
    const Record& r = f.record;
    const std::string diff = r.source.differs_from(ref->record.source);
    if (!diff.empty()) {
      problems.push_back("foreign record at " + f.where + " (" + r.label() + "): its " + diff +
                         " is '" + r.source.value_of(diff) + "', not '" +
                         ref->record.source.value_of(diff) + "' as in " + ref->where);
      continue;
    }
    if (r.sweep.grid_sha256 != g.grid_sha256 || r.sweep.cells != g.cells ||
        r.sweep.shards != g.shards) {
      problems.push_back("foreign record at " + f.where + " (" + r.label() + "): another grid (" +
                         std::to_string(r.sweep.cells) + " cells, " +
                         std::to_string(r.sweep.shards) + " shards, grid " +
                         r.sweep.grid_sha256.substr(0, 12) + ") than " + ref->where + "'s (" +
                         std::to_string(g.cells) + " cells, " + std::to_string(g.shards) +
                         " shards, grid " + g.grid_sha256.substr(0, 12) + ")");
      continue;
    }
    if (labels.empty() && !r.sweep.grid.empty()) labels = r.sweep.grid;
    if (r.is_float()) {
      if (!flt) {
        flt = &f;
      } else if (!same_numbers(flt->record, r)) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g vs %.17g", flt->record.perplexity(), r.perplexity());
        problems.push_back("the float model's perplexity differs between " + flt->where + " and " +
                           f.where + " (" + buf +
                           "): those shards ran with different numerics (BLAS, threads, CPU); "
                           "run them alike");
      }
      continue;
    }
    const int64_t i = r.sweep.index;
    if (i < 0 || i >= g.cells) {
      problems.push_back("foreign record at " + f.where + ": cell index " + std::to_string(i) +
                         " is outside the grid's " + std::to_string(g.cells) + " cells");
      continue;
    }
    const Found*& slot = cell[static_cast<size_t>(i)];
    if (!slot) {
      slot = &f;
    } else if (!same_numbers(slot->record, r)) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "perplexity %.6f vs %.6f", slot->record.perplexity(),
                    r.perplexity());
      problems.push_back("cell " + std::to_string(i) + " (" + r.label() +
                         ") is duplicated with different numbers: " + slot->where + " and " +
                         f.where + " (" + buf + ")");
    }
  }
  if (!flt) problems.push_back("no float record in any shard (each shard writes one first)");
  for (int64_t i = 0; i < g.cells; ++i) {
    if (cell[static_cast<size_t>(i)]) continue;
    const std::string label = static_cast<size_t>(i) < labels.size() ? labels[i] : "?";
    problems.push_back("missing cell " + std::to_string(i) + " (" + label + "), owed by shard " +
                       std::to_string(Shard::owner(i, g.shards)) + "/" + std::to_string(g.shards) +
                       ": run that shard again (it resumes)");
  }
  if (!problems.empty()) {
    std::string msg = "cannot merge " + std::to_string(paths.size()) + " file(s) into one sweep (" +
                      std::to_string(problems.size()) + " problem" +
                      (problems.size() == 1 ? "" : "s") + "):";
    for (const auto& p : problems) msg += "\n  " + p;
    throw std::runtime_error(msg);
  }
  std::vector<Record> out = {flt->record};
  for (const Found* f : cell) out.push_back(f->record);
  return out;
}

std::vector<std::string> write_sweep_report(const std::string& dir,
                                            const std::vector<Record>& records,
                                            const std::string& model_label) {
  check_same_provenance(records);
  std::vector<std::string> notes;
  const Provenance& src = records.front().source;
  write_report_dir(dir, [&](const std::string& d) {
    for (const auto& msg :
         {plot_perplexity_vs_bits(records, d + "/perplexity_vs_bits.png"),
          plot_perplexity_vs_overhead(records, d + "/perplexity_vs_overhead.png")})
      if (!msg.empty()) notes.push_back(msg);
    write_file_atomic(d + "/report.md",
                      "# lmquant sweep\n\n- model: `" + model_label + "` (sha256 " +
                          src.model_sha256.substr(0, 16) + "…)\n- split: " + src.split + "\n\n" +
                          markdown_table(records) +
                          "\n![perplexity vs bits](perplexity_vs_bits.png)\n\n"
                          "![perplexity vs overhead](perplexity_vs_overhead.png)\n");
    write_file_atomic(d + "/results.csv", csv(records));
    write_file_atomic(d + "/results.json", records_json(records).dump(1) + "\n");
  });
  return notes;
}

}  // namespace lmquant
