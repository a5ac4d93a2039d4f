#include "experiment/joint_allocation.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "lm/evaluate.h"
#include "lm/matrices.h"
#include "util/text.h"

namespace lmquant {

namespace {

// Entries equal to the configuration's default say nothing: dropped, so that one assignment has
// one configuration (and one cache key, one label).
void normalise(QuantConfig& c) {
  for (auto it = c.matrix_bits.begin(); it != c.matrix_bits.end();)
    it = it->second == c.bits ? c.matrix_bits.erase(it) : std::next(it);
  for (auto it = c.matrix_granularity.begin(); it != c.matrix_granularity.end();)
    it = it->second == c.granularity ? c.matrix_granularity.erase(it) : std::next(it);
  for (auto it = c.matrix_row_budget.begin(); it != c.matrix_row_budget.end();)
    it = it->second == c.row_budget ? c.matrix_row_budget.erase(it) : std::next(it);
}

class Search {
 public:
  Search(const JointProblem& p, const JointOptions& o, const Log& log) : p_(p), o_(o), log_(log) {}

  // The split of c: r_decoder − r_embedding (0 with one row-width matrix).
  double split_of(const QuantConfig& c) const {
    return p_.rows.size() == 2 ? c.row_budget_for(p_.rows[1]) - c.row_budget_for(p_.rows[0]) : 0;
  }

  // Sets c's row budgets (split d) so that size(c) = T · P; false when a budget leaves the
  // widths' range or the configuration is invalid.
  bool fill(QuantConfig& c, double d) const {
    auto set = [&](double r) {
      if (p_.rows.size() == 2) {
        c.matrix_row_budget[p_.rows[0]] = r - d / 2;
        c.matrix_row_budget[p_.rows[1]] = r + d / 2;
      } else {
        c.matrix_row_budget[p_.rows[0]] = r;
      }
      c.row_budget = r;
    };
    set(0);
    const double a = p_.size(c);
    set(1);
    const double slope = p_.size(c) - a;
    if (!(slope > 0)) return false;
    const double r = (p_.size_bits - a) / slope;
    set(r);
    const double lo = c.row_widths.front(), hi = c.row_widths.back();
    for (const auto& [name, rb] : c.matrix_row_budget)
      if (!(rb >= lo && rb <= hi)) return false;
    normalise(c);
    try {
      c.validate();
    } catch (const std::invalid_argument&) {
      return false;
    }
    return true;
  }

  double measure(const QuantConfig& c) {
    const std::string key = c.to_json().dump();
    const auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    const double l = p_.loss(c);
    cache_[key] = l;
    return l;
  }

  JointResult run() {
    if (p_.rows.empty() || p_.rows.size() > 2)
      throw std::invalid_argument(
          "the joint solver spends the size through the vocabulary matrices' row budgets: give "
          "row widths (e.g. --row-widths 1,2,3,4,5,6,7)");
    JointResult out;
    QuantConfig cur = p_.start;
    if (!fill(cur, split_of(cur)))
      throw std::invalid_argument(
          "the start configuration cannot meet the size: its row budgets would leave the row "
          "widths' range (" +
          std::to_string(cur.row_widths.front()) + ".." + std::to_string(cur.row_widths.back()) +
          "); choose another budget, widths or start");
    const auto t0 = std::chrono::steady_clock::now();
    out.start_loss = measure(cur);
    out.steps.push_back({0, "start", cur, out.start_loss, p_.size(cur), true});
    if (log_) log_("start: " + cur.label() + ": loss " + fmt("%.5f", out.start_loss));
    out.min_gain = o_.min_gain;
    if (o_.noise_repeats > 0) {
      std::vector<double> ls{out.start_loss};
      for (int k = 1; k <= o_.noise_repeats; ++k) {
        QuantConfig jit = cur;
        jit.repeat = k;
        ls.push_back(measure(jit));
        out.steps.push_back(
            {0, "start, rounding " + std::to_string(k), jit, ls.back(), p_.size(jit), false});
        if (log_)
          log_("start, jittered rounding " + std::to_string(k) + ": loss " +
               fmt("%.5f", ls.back()));
      }
      double mean = 0, ss = 0;
      for (double l : ls) mean += l / static_cast<double>(ls.size());
      for (double l : ls) ss += (l - mean) * (l - mean);
      out.noise_std = std::sqrt(ss / static_cast<double>(ls.size() - 1));
      out.min_gain = std::max(out.min_gain, 2 * std::sqrt(2.0) * out.noise_std);
      if (log_)
        log_("rounding spread of the start: σ = " + fmt("%.5f", out.noise_std) +
             " nats; a move must gain more than " + fmt("%.5f", out.min_gain));
    }
    double cur_loss = out.start_loss;
    for (int round = 1; round <= o_.max_rounds; ++round) {
      out.rounds = round;
      const auto moves = neighbours(cur);
      size_t best = moves.size();
      double best_loss = cur_loss;
      std::vector<size_t> measured;
      for (size_t i = 0; i < moves.size(); ++i) {
        const double l = measure(moves[i].second);
        out.steps.push_back(
            {round, moves[i].first, moves[i].second, l, p_.size(moves[i].second), false});
        measured.push_back(out.steps.size() - 1);
        if (l < best_loss) best_loss = l, best = i;
        if (log_) {
          const double secs =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          log_("[round " + std::to_string(round) + ", " + std::to_string(i + 1) + "/" +
               std::to_string(moves.size()) + "] " + moves[i].first + ": loss " + fmt("%.5f", l) +
               " (" + fmt("%+.5f", l - cur_loss) + "), " + fmt("%.0f s", secs));
        }
      }
      if (best == moves.size() || cur_loss - best_loss <= out.min_gain) {
        out.converged = true;
        break;
      }
      out.steps[measured[best]].accepted = true;
      cur = moves[best].second;
      cur_loss = best_loss;
      if (log_) log_("round " + std::to_string(round) + ": " + moves[best].first);
    }
    out.config = cur;
    out.loss = cur_loss;
    out.size_bits = p_.size(cur);
    out.evaluations = static_cast<int>(cache_.size());
    return out;
  }

 private:
  // Every single-coordinate move from c that meets the size: (what, configuration).
  std::vector<std::pair<std::string, QuantConfig>> neighbours(const QuantConfig& c) const {
    std::vector<std::pair<std::string, QuantConfig>> out;
    const double d = split_of(c);
    auto add = [&](const std::string& what, QuantConfig n, double nd) {
      if (fill(n, nd)) out.emplace_back(what, std::move(n));
    };
    for (const auto& m : p_.plain) {
      const int b = c.bits_for(m);
      for (int nb : {b - 1, b + 1}) {
        if (nb < o_.min_bits || nb > o_.max_bits) continue;
        QuantConfig n = c;
        n.matrix_bits[m] = nb;
        add(m + " " + std::to_string(b) + "→" + std::to_string(nb) + "b", n, d);
      }
    }
    std::vector<std::string> all = p_.plain;
    all.insert(all.end(), p_.rows.begin(), p_.rows.end());
    for (const auto& m : all)
      for (const auto& g : o_.granularities) {
        const Granularity now = c.granularity_for(m);
        if (g == now) continue;
        QuantConfig n = c;
        n.matrix_granularity[m] = g;
        add(m + " " + to_string(now) + "→" + to_string(g), n, d);
      }
    if (p_.rows.size() == 2)
      for (double s : {o_.split_step, -o_.split_step}) {
        QuantConfig n = c;
        if (!fill(n, d + s)) continue;
        const std::string what = "split " + fmt("%+g", s) + " (" + p_.rows[0] + " " +
                                 fmt("%.3f", n.row_budget_for(p_.rows[0])) + ", " + p_.rows[1] +
                                 " " + fmt("%.3f", n.row_budget_for(p_.rows[1])) + ")";
        out.emplace_back(what, std::move(n));
      }
    return out;
  }

  const JointProblem& p_;
  const JointOptions& o_;
  const Log& log_;
  std::map<std::string, double> cache_;
};

}  // namespace

JointResult refine_jointly(const JointProblem& problem, const JointOptions& options,
                           const Log& log) {
  if (options.min_bits > options.max_bits || !(options.split_step > 0) || options.max_rounds < 0 ||
      options.noise_repeats < 0)
    throw std::invalid_argument(
        "joint solver: needs min bits <= max bits, a positive split step, rounds >= 0 and noise "
        "repeats >= 0");
  return Search(problem, options, log).run();
}

JointResult choose_jointly(const EvalContext& select, const QuantConfig& start,
                           double bits_per_weight, const JointOptions& options, const Log& log) {
  if (select.split() == Split::kTest)
    throw std::invalid_argument("the joint allocation is chosen on valid or train, not on test");
  if (!start.has_row_widths())
    throw std::invalid_argument(
        "the joint solver spends the size through the vocabulary matrices' row budgets: give "
        "row widths (e.g. --row-widths 1,2,3,4,5,6,7)");
  start.validate();
  const LstmLmImpl& model = *select.model().model;
  JointProblem p;
  p.start = start;
  for (const auto& m : targeted_matrices(model.config(), start.targets))
    (has_row_widths(m, start) ? p.rows : p.plain).push_back(m.name);
  p.size_bits = bits_per_weight * static_cast<double>(stored_parameter_count(model));
  p.size = [&](const QuantConfig& c) { return predicted_size_bits(model, c); };
  p.loss = [&](const QuantConfig& c) {
    QuantizedModel qm = select.quantize(c);
    return evaluate(qm.folded, select.stream(), select.options()).loss;
  };
  return refine_jointly(p, options, log);
}

std::string joint_table(const JointResult& r) {
  std::string out = "joint allocation (steepest descent on the whole model's selection loss):\n";
  char buf[400];
  std::snprintf(buf, sizeof buf, "  %-6s %s %10s %10s\n", "round",
                padded("accepted move", 64).c_str(), "loss", "Δ loss");
  out += buf;
  double prev = r.start_loss;
  for (const auto& s : r.steps) {
    if (!s.accepted) continue;
    std::snprintf(buf, sizeof buf, "  %-6d %s %10.5f %+10.5f\n", s.round,
                  padded(s.move, 64).c_str(), s.loss, s.loss - prev);
    out += buf;
    prev = s.loss;
  }
  std::snprintf(buf, sizeof buf,
                "  %d configurations measured in %d rounds (%s; a move had to gain more than "
                "%.5f nats, rounding spread σ = %.5f); selection loss %.5f → %.5f "
                "(perplexity %.3f → %.3f), %.4f MB predicted\n  chosen: %s\n",
                r.evaluations, r.rounds,
                r.converged ? "a local minimum" : "stopped at the round limit", r.min_gain,
                r.noise_std, r.start_loss, r.loss, std::exp(r.start_loss), std::exp(r.loss),
                r.size_bits / 8 / 1e6, r.config.label().c_str());
  return out + buf;
}

nlohmann::json joint_json(const JointResult& jr, double bits_per_weight, int64_t select_tokens) {
  nlohmann::json j = {{"bits_per_weight", bits_per_weight},
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
      j["moves"].push_back({{"round", st.round}, {"move", st.move}, {"loss", st.loss}});
  return j;
}

}  // namespace lmquant
