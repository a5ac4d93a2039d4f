#include "experiment/main_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "lm/matrices.h"
#include "report/plots.h"
#include "report/report.h"
#include "util/atomic_file.h"
#include "util/text.h"

namespace fs = std::filesystem;

namespace lmquant {

void MainJobOptions::validate() const {
  QuantConfig q;
  q.bits = bits;
  q.targets = targets;
  q.validate();
  for (double r : expand_ratios) ocs_split_count(r, 1);
  if (clips.empty()) throw std::invalid_argument("the main job needs at least one clip rule");
  if (granularities.empty())
    throw std::invalid_argument("the main job needs at least one granularity");
  if (select_tokens < 0)
    throw std::invalid_argument("selection tokens must be >= 0 (0: the whole split), got " +
                                std::to_string(select_tokens));
  for (int b : curve_bits) {
    QuantConfig c;
    c.bits = b;
    c.validate();
  }
}

LstmLmConfig preset_config(const std::string& preset) {
  LstmLmConfig c;
  if (preset == "small") {
    c.emb = c.hidden = 200, c.dropout = 0.2;
  } else if (preset == "medium") {
    c.emb = c.hidden = 650, c.dropout = 0.5;
  } else if (preset == "large") {
    c.emb = c.hidden = 1500, c.dropout = 0.65;
  } else {
    throw std::invalid_argument("unknown preset '" + preset +
                                "'; valid values: small, medium, large");
  }
  return c;
}

std::string default_model_path(const Corpus& corpus, const std::string& cache_dir,
                               const std::string& preset) {
  const std::string tok =
      corpus.tokenizer == "word" ? "" : "-spm-" + corpus.tokenizer.substr(4, 12);
  return cache_dir + "/models/" + corpus.location.name + "-" + preset + tok + "-annealed.lmq";
}

std::vector<double> default_lr_schedule(int64_t epochs) {
  if (epochs < 1)
    throw std::invalid_argument("the default model needs at least 1 epoch, got " +
                                std::to_string(epochs));
  std::vector<double> lrs(static_cast<size_t>(epochs), 20.0);
  if (epochs > 1) lrs.back() = 5.0;
  return lrs;
}

std::string default_model_plan(const Corpus& corpus, const std::string& cache_dir,
                               const std::string& preset, int64_t epochs) {
  LstmLmConfig c = preset_config(preset);
  c.vocab = corpus.vocab.size();
  const std::string path = default_model_path(corpus, cache_dir, preset);
  const bool resuming = fs::exists(path + ".last");
  std::ostringstream s;
  s << "no --model given and no cached model: "
    << (resuming ? "resuming the training of" : "training") << " the " << preset << " preset ("
    << c.describe() << ") for " << epochs << " epoch" << (epochs == 1 ? "" : "s")
    << " (learning rate per epoch ";
  const auto lrs = default_lr_schedule(epochs);
  for (size_t i = 0; i < lrs.size(); ++i) s << (i ? ", " : "") << lrs[i];
  s << ": the last epoch anneals) over " << corpus.train.numel() << " " << corpus.location.name
    << " train tokens into " << path
    << " first (the time per epoch is measured on the first batches and printed next); to skip "
       "it, pass --model M (a PyTorch word_language_model state_dict or an .lmq), or --epochs 1 "
       "for a quicker but less converged model";
  return s.str();
}

std::string ensure_default_model(const Corpus& corpus, const std::string& cache_dir,
                                 const std::string& preset, int64_t epochs,
                                 const torch::Device& device, const TrainOptions& train_options) {
  const std::string path = default_model_path(corpus, cache_dir, preset);
  if (fs::exists(path)) return path;
  make_directories(cache_dir + "/models");
  LstmLmConfig c = preset_config(preset);
  c.vocab = corpus.vocab.size();
  torch::manual_seed(1111);
  LstmLm fresh(c);
  fresh->to(device);
  TrainOptions t = train_options;
  t.epochs = epochs;
  t.lr_schedule = default_lr_schedule(epochs);
  t.out = path;
  t.resume = fs::exists(path + ".last");
  train(fresh, corpus, t);
  return path;
}

namespace {

using Clock = std::chrono::steady_clock;

// A family of methods: (method, granularity). One reported row each.
std::string family(const QuantConfig& q) {
  return to_string(q.method) + (q.rounding == Rounding::kGptq ? "+gptq" : "") + " per " +
         to_string(q.granularity) + (q.has_row_widths() ? " with bits per row" : "") +
         (q.rotate ? ", rotated" : "");
}

}  // namespace

std::string MainJobResult::selection_line() const {
  if (candidates.empty()) return "";
  const auto& s = candidates.front().source;
  const std::string stream =
      s.split + (s.first_tokens > 0 ? " (its first " + std::to_string(s.first_tokens) + " tokens)"
                                    : " (all " + std::to_string(s.split_tokens) + " tokens)");
  return "Selected on " + stream + ": the candidate with the lowest perplexity there; " +
         (reported.empty() ? std::string("nothing")
                           : "the " + reported.front().source.split + " split is only reported") +
         ".";
}

MainJobResult run_main_job(const LoadedModel& model, const Corpus& corpus,
                           const MainJobOptions& o) {
  o.validate();
  const auto t0 = Clock::now();
  MainJobResult res;
  EvalContext sel(model, corpus, o.select_split, o.select_tokens, o.progress);
  EvalContext rep(model, corpus, o.report_split, 0, o.progress);
  sel.set_divergence(false);
  rep.set_divergence(o.divergence);
  std::vector<int> widths = o.curve_bits;
  if (widths.empty())
    for (int b : {o.bits - 1, o.bits + 1, o.bits + 2, 8})
      if (b >= 2 && b <= 8 && b != o.bits &&
          std::find(widths.begin(), widths.end(), b) == widths.end())
        widths.push_back(b);

  // Planned work in evaluated tokens, for the ETA.
  const double sel_tok = static_cast<double>(sel.stream().numel());
  const double rep_tok = static_cast<double>(rep.stream().numel());
  const size_t n_ocs_rules = std::min<size_t>(2, o.clips.size() + 1);
  const bool gptq =
      std::find(o.roundings.begin(), o.roundings.end(), Rounding::kGptq) != o.roundings.end();
  const size_t n_gptq = gptq ? o.granularities.size() * n_ocs_rules : 0;
  const bool rows = o.rows && o.bits <= 6;
  // Bits per row: plain and rotated, each with the decoder rounded to nearest and (gptq) against
  // the output distribution.
  const size_t n_rows = rows ? (gptq ? 4 : 2) : 0;
  const size_t n_sel = 1 + o.clips.size() * o.granularities.size() +
                       o.granularities.size() * n_ocs_rules * o.expand_ratios.size() + n_gptq +
                       n_rows;
  const size_t n_rep = 1 + (gptq ? 3 : 2) * o.granularities.size() + (rows ? 2 : 0);
  const size_t n_curve = widths.size() * 3;
  const double planned =
      sel_tok * static_cast<double>(n_sel + n_curve) + rep_tok * static_cast<double>(n_rep);
  double done = 0;
  size_t step = 0;
  const size_t steps = n_sel + n_rep + n_curve;
  auto log = [&](const std::string& what, double tokens) {
    ++step;
    if (!o.log) return;
    const double el = std::chrono::duration<double>(Clock::now() - t0).count();
    const int eta = done > 0 ? static_cast<int>(el / done * (planned - done)) : -1;
    char buf[256];
    std::snprintf(
        buf, sizeof buf, "[%zu/%zu] %s (%d s elapsed, ETA %s)", step, steps, what.c_str(),
        static_cast<int>(el),
        eta < 0 ? "?"
                : (std::to_string(eta / 60) + " min " + std::to_string(eta % 60) + " s").c_str());
    o.log(buf);
    done += tokens;
  };

  QuantConfig base;
  base.bits = o.bits;
  base.targets = o.targets;
  // 1. Candidates on the selection stream.
  log("float on " + sel.source().split + " (selection)", sel_tok);
  res.candidates.push_back(sel.float_record());
  auto candidate = [&](const QuantConfig& q) {
    log(q.label() + " on " + sel.source().split + " (selection)", sel_tok);
    res.candidates.push_back(sel.run(q));
    return res.candidates.back();
  };
  std::map<Granularity, ClipRule> best_rule;
  for (Granularity g : o.granularities) {
    double best = INFINITY;
    for (const auto& rule : o.clips) {
      QuantConfig q = base;
      q.granularity = g;
      q.clip = rule;
      const Record r = candidate(q);
      if (rule.kind != ClipRule::Kind::kMax && r.perplexity() < best)
        best = r.perplexity(), best_rule[g] = rule;
    }
  }
  // OCS and gptq run with max and with the best non-max rule of the granularity.
  auto rules_for = [&](Granularity g) {
    std::vector<ClipRule> rules = {ClipRule::parse("max")};
    if (best_rule.count(g)) rules.push_back(best_rule[g]);
    return rules;
  };
  for (Granularity g : o.granularities) {
    for (const auto& rule : rules_for(g))
      for (double r : o.expand_ratios) {
        QuantConfig q = base;
        q.method = Method::kOcs;
        q.granularity = g;
        q.clip = rule;
        q.expand_ratio = r;
        candidate(q);
      }
  }
  for (Granularity g : gptq ? o.granularities : std::vector<Granularity>{}) {
    for (const auto& rule : rules_for(g)) {
      QuantConfig q = base;
      q.granularity = g;
      q.clip = rule;
      q.rounding = Rounding::kGptq;
      candidate(q);
    }
  }
  // The bits-per-row family at `bits` (MainJobOptions::rows), with the per-row clip rule `clip`.
  auto rows_family = [&](int bits, const ClipRule& clip, bool rotate, bool fisher) {
    QuantConfig plain = base;
    plain.bits = bits;
    plain.granularity = Granularity::kRow;
    QuantConfig q = plain;
    q.clip = clip;
    if (gptq) q.rounding = Rounding::kGptq;
    q.grid = Grid::kMidrise;
    q.half_scales = true;
    q.row_widths = {1, 2, 3, 4, 5, 6, 7};
    q.rotate = rotate;
    q.fisher_decoder = fisher && gptq;
    q.row_budget = row_budget_for_size(*model.model, q, predicted_size_bits(*model.model, plain));
    q.row_budget = std::floor(std::min(7.0, q.row_budget) * 1000) / 1000;  // a printable budget
    return q;
  };
  // Twice: as it is, and with every matrix rotated first (quant/rotation.h); the seeds' bits come
  // out of the vocabulary budget. With gptq, each also with the decoder compensated against the
  // output distribution (quant/decoder_fisher.h), a candidate of the same family.
  if (rows)
    for (bool rotate : {false, true})
      for (bool fisher : {false, true}) {
        if (fisher && !gptq) continue;
        candidate(rows_family(o.bits,
                              best_rule.count(Granularity::kRow) ? best_rule[Granularity::kRow]
                                                                 : ClipRule::parse("mse"),
                              rotate, fisher));
      }
  // 2. The recommendation, and the best of each family, by selection perplexity.
  std::map<std::string, const Record*> best_of;
  std::vector<std::string> order;
  const Record* rec = nullptr;
  for (const auto& r : res.candidates) {
    if (r.is_float()) continue;
    if (!rec || r.perplexity() < rec->perplexity()) rec = &r;
    const std::string f = family(r.config);
    if (!best_of.count(f)) order.push_back(f);
    if (!best_of.count(f) || r.perplexity() < best_of[f]->perplexity()) best_of[f] = &r;
  }
  // 3. Reported on the report split.
  log("float on " + rep.source().split + " (reported)", rep_tok);
  res.reported.push_back(rep.float_record());
  std::vector<double> sel_ppl = {res.candidates.front().perplexity()};
  for (const auto& f : order) {
    const QuantConfig& q = best_of[f]->config;
    log(q.label() + " on " + rep.source().split + " (reported: best " + f + ")", rep_tok);
    res.reported.push_back(rep.run(q));
    sel_ppl.push_back(best_of[f]->perplexity());
    if (q == rec->config) res.recommended = res.reported.size() - 1;
  }
  // The runner-up: the next best family on selection.
  double second = INFINITY;
  for (size_t i = 1; i < res.reported.size(); ++i)
    if (i != res.recommended && sel_ppl[i] < second)
      second = sel_ppl[i], res.runner_up = static_cast<int>(i);
  const Record& R = res.reported[res.recommended];
  if (res.runner_up > 0) {
    const Record& U = res.reported[static_cast<size_t>(res.runner_up)];
    res.recommended_vs_runner_up =
        paired_bootstrap(R.eval.chunk_nll, U.eval.chunk_nll, R.eval.chunk_tokens);
  }
  // A cheaper alternative: no MAC overhead, not significantly worse than the recommendation.
  if (R.macs_overhead_pct() > 0) {
    double best = INFINITY;
    for (size_t i = 1; i < res.reported.size(); ++i) {
      const Record& A = res.reported[i];
      if (A.macs_overhead_pct() > 0 || sel_ppl[i] >= best) continue;
      const auto d = paired_bootstrap(A.eval.chunk_nll, R.eval.chunk_nll, R.eval.chunk_tokens);
      if (d.ci_low <= 0) best = sel_ppl[i], res.cheaper_alternative = static_cast<int>(i);
    }
  }
  // 4. The bits curve on the selection stream.
  res.curve.push_back(res.candidates.front());
  std::vector<QuantConfig> lines = {R.config};
  for (Granularity g : {Granularity::kTensor, Granularity::kRow}) {
    QuantConfig q = base;
    q.granularity = g;
    if (!(q == R.config)) lines.push_back(q);
  }
  for (const auto& line : lines) {
    for (const auto& c : res.candidates)
      if (c.config == line) res.curve.push_back(c);  // the requested width, already evaluated
    for (int b : widths) {
      QuantConfig q = line;
      q.bits = b;
      if (line.has_row_widths()) {
        // The family at b: its budget follows the storage of b-bit rows; none above 6 bits.
        if (b > 6) continue;
        q = rows_family(b, line.clip, line.rotate, line.fisher_decoder);
      }
      log(q.label() + " on " + sel.source().split + " (bits curve)", sel_tok);
      res.curve.push_back(sel.run(q));
    }
  }
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

std::vector<std::string> write_main_report(const std::string& dir, const MainJobResult& res,
                                           const LoadedModel& model, const MainJobOptions& o,
                                           const std::string& model_label,
                                           const std::string& plot_matrix) {
  std::vector<std::string> notes;
  check_same_provenance(res.candidates);
  check_same_provenance(res.reported);
  check_same_provenance(res.curve);
  std::vector<Record> all = res.candidates;
  all.insert(all.end(), res.reported.begin(), res.reported.end());
  check_same_provenance(all, /*same_stream=*/false);
  const Record& R = res.recommendation();
  const auto& rs = R.source;
  const auto& ss = res.candidates.front().source;
  const bool on_report_split = ss.split == rs.split;
  write_report_dir(dir, [&](const std::string& d) {
    auto plot = [&](const std::string& msg) {
      if (!msg.empty()) notes.push_back(msg);
    };
    plot(plot_perplexity_vs_bits(res.curve, d + "/perplexity_vs_bits.png"));
    plot(plot_perplexity_vs_overhead(res.candidates, d + "/perplexity_vs_overhead.png"));
    // The picture that explains OCS: one matrix before and after the largest split.
    QuantConfig q;
    q.bits = o.bits;
    q.method = Method::kOcs;
    q.expand_ratio = o.expand_ratios.empty()
                         ? 0.1
                         : *std::max_element(o.expand_ratios.begin(), o.expand_ratios.end());
    const NamedMatrix m = find_matrix(model.model->config(), plot_matrix);
    q.targets = {m.kind};
    QuantizedModel qm = quantize_model(model.model, q);
    for (size_t i = 0; i < qm.matrices.size(); ++i) {
      if (qm.matrices[i].name != plot_matrix) continue;
      auto before = m.weight(*model.model).detach().cpu();
      plot(plot_weight_histograms(plot_matrix + ", OCS r=" + fmt("%g", q.expand_ratio), before,
                                  static_cast<float>(qm.matrices[i].max_abs_before),
                                  apply_ocs(before, qm.tensors[i].plan),
                                  static_cast<float>(qm.matrices[i].alpha), o.bits,
                                  d + "/histogram_" + plot_matrix + ".png"));
    }
    std::ostringstream md;
    md << "# lmquant report: what to ship at " << o.bits << " bits"
       << (on_report_split
               ? " (SELECTED ON THE " + rs.split + " SPLIT: the reported numbers are optimistic)"
               : "")
       << "\n\n";
    md << "**Recommendation: " << R.label() << "** — " << rs.split << " perplexity "
       << fmt("%.2f", R.perplexity()) << ", " << delta_text(R) << " vs float "
       << fmt("%.2f", R.float_perplexity) << "; size " << fmt("%.2f", R.size_bits / 8 / 1048576)
       << " MiB (float " << fmt("%.2f", R.float_size_bits / 8 / 1048576) << " MiB); MAC overhead "
       << fmt("%.2f", R.macs_overhead_pct()) << "%.\n\n";
    if (res.runner_up > 0) {
      const Record& U = res.reported[static_cast<size_t>(res.runner_up)];
      const auto& d = res.recommended_vs_runner_up;
      md << "Runner-up: " << U.label() << " (" << rs.split << " perplexity "
         << fmt("%.2f", U.perplexity()) << "). Recommendation vs runner-up: " << interval_text(d)
         << (d.significant() ? " (significant)" : "") << ".\n\n";
    }
    if (res.cheaper_alternative > 0) {
      const Record& A = res.reported[static_cast<size_t>(res.cheaper_alternative)];
      md << "Cheaper alternative, not significantly worse: **" << A.label() << "** ("
         << fmt("%.2f", A.perplexity()) << ", " << delta_text(A) << "; no OCS overhead).\n\n";
    }
    md << "- " << res.selection_line() << "\n"
       << "- model: `" << model_label << "` (" << model.model->config().describe() << ", sha256 "
       << model.file_sha256.substr(0, 16) << "…)\n"
       << "- corpus: " << rs.corpus << " (tokenizer " << rs.tokenizer.substr(0, 16)
       << "); perplexity = exp(mean NLL), eval batch 10, bptt 35, hidden state carried; Δ "
          "intervals: 95% paired block bootstrap over "
       << R.eval.chunk_nll.size() << " chunks, " << kBootstrapResamples << " resamples\n"
       << "- quantization: " << o.bits << " bits, targets " << to_string(o.targets)
       << "; OCS evaluated with the folded simulation; MAC overhead of the expanded OCS model\n"
       << "- wall time " << fmt("%.0f", res.seconds) << " s\n\n"
       << "## Reported on " << rs.split << " (" << rs.split_tokens << " tokens)\n\n"
       << markdown_table(res.reported) << "\n"
       << "## Every candidate on the selection stream (" << ss.split
       << (ss.first_tokens ? ", first " + std::to_string(ss.first_tokens) + " tokens" : "")
       << ")\n\n"
       << markdown_table(res.candidates) << "\n"
       << "## Plots\n\n"
       << "![perplexity vs bits (selection stream)](perplexity_vs_bits.png)\n\n"
       << "![perplexity vs OCS overhead (selection stream)](perplexity_vs_overhead.png)\n\n"
       << "![weights before/after OCS](histogram_" << plot_matrix << ".png)\n";
    std::vector<Record> every = all;
    every.insert(every.end(), res.curve.begin(), res.curve.end());
    write_file_atomic(d + "/report.md", md.str());
    write_file_atomic(d + "/results.csv", csv(every));
    write_file_atomic(d + "/results.json", records_json(every).dump(1) + "\n");
  });
  return notes;
}

nlohmann::json MainJobResult::to_json() const {
  return {{"candidates", records_json(candidates)},
          {"reported", records_json(reported)},
          {"curve", records_json(curve)},
          {"recommendation", recommendation().to_json()},
          {"recommended", recommended},
          {"runner_up", runner_up},
          {"recommended_vs_runner_up", recommended_vs_runner_up.to_json()},
          {"cheaper_alternative", cheaper_alternative},
          {"selection", selection_line()},
          {"seconds", seconds}};
}

}  // namespace lmquant
