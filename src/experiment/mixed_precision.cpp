#include "experiment/mixed_precision.h"

#include <chrono>
#include <cstdio>

namespace lmquant {

MixedPrecision choose_bits(const EvalContext& select, const QuantConfig& base, double budget,
                           int min_bits, int max_bits, const Log& log) {
  if (select.split() == Split::kTest)
    throw std::invalid_argument("bits per matrix are chosen on valid or train, not on test");
  base.validate();
  const double float_loss = select.float_eval().loss;
  std::vector<std::string> names;
  for (const auto& m : targeted_matrices(select.model().model->config(), base.targets))
    names.push_back(m.name);
  MixedPrecision out;
  out.budget = budget;
  const auto t0 = std::chrono::steady_clock::now();
  const size_t total = names.size() * static_cast<size_t>(max_bits - min_bits + 1);
  size_t done = 0;
  for (const auto& name : names) {
    MatrixCost c;
    c.name = name;
    c.scale_bits = scale_bits(base.granularity_for(name), base.half_scales);
    for (int b = min_bits; b <= max_bits; ++b) {
      QuantConfig q = base;
      q.matrix_bits.clear();
      for (const auto& other : names) q.matrix_bits[other] = other == name ? b : 16;
      QuantizedModel qm = select.quantize(q);
      LstmLm m = qm.folded;
      c.delta[b] = evaluate(m, select.stream(), select.options()).loss - float_loss;
      for (const auto& r : qm.matrices)
        if (r.name == name) c.weights = r.params_after, c.scales = r.groups;
      ++done;
      if (log) {
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        char buf[200];
        std::snprintf(buf, sizeof buf, "[%zu/%zu] %s at %d bits: loss %+.4f vs float (ETA %.0f s)",
                      done, total, name.c_str(), b, c.delta[b],
                      secs / static_cast<double>(done) * static_cast<double>(total - done));
        log(buf);
      }
    }
    out.costs.push_back(c);
  }
  out.allocation = allocate_bits(out.costs, budget, min_bits, max_bits);
  out.config = base;
  out.config.matrix_bits.clear();
  // The most common width is `bits`; the others are listed per matrix.
  std::map<int, int64_t> weight_at;
  for (const auto& c : out.costs) weight_at[out.allocation.bits.at(c.name)] += c.weights;
  int common = out.allocation.bits.begin()->second;
  for (const auto& [b, n] : weight_at)
    if (n > weight_at[common]) common = b;
  out.config.bits = common;
  for (const auto& [name, b] : out.allocation.bits)
    if (b != common) out.config.matrix_bits[name] = b;
  return out;
}

std::string allocation_table(const MixedPrecision& mp) {
  std::string out = "bits per matrix for an average of " + std::to_string(mp.budget).substr(0, 5) +
                    " bits per weight (chosen on the selection stream):\n";
  char buf[200];
  std::snprintf(buf, sizeof buf, "  %-20s %12s %9s %5s %14s\n", "matrix", "weights", "scales",
                "bits", "Δ loss alone");
  out += buf;
  for (const auto& c : mp.costs) {
    const int b = mp.allocation.bits.at(c.name);
    std::snprintf(buf, sizeof buf, "  %-20s %12lld %9lld %5d %+14.4f\n", c.name.c_str(),
                  static_cast<long long>(c.weights), static_cast<long long>(c.scales), b,
                  c.delta.at(b));
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "  average %.4f bits per weight (scales included); predicted Δ loss %+.4f\n",
                mp.allocation.average_bits, mp.allocation.predicted_delta);
  return out + buf;
}

}  // namespace lmquant
