#include "quant/clip.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <vector>

#include "quant/uniform_quantizer.h"

namespace lmquant {
namespace {

constexpr int64_t kExactLimit = 65536;
constexpr int kHistBins = 2048;

float max_abs(const float* w, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(w[i]));
  return m;
}

// A histogram of |w| over [0, max]: counts and bin centres.
struct Histogram {
  std::vector<double> count, centre;
  double width = 0;
};

Histogram abs_histogram(const float* w, int64_t n, float mx, int bins) {
  Histogram h;
  h.count.assign(static_cast<size_t>(bins), 0);
  h.width = mx / bins;
  for (int b = 0; b < bins; ++b) h.centre.push_back((b + 0.5) * h.width);
  if (mx == 0) return h;
  const double inv = bins / static_cast<double>(mx);
  for (int64_t i = 0; i < n; ++i) {
    int b = static_cast<int>(std::fabs(w[i]) * inv);
    h.count[static_cast<size_t>(std::min(b, bins - 1))] += 1;
  }
  return h;
}

// The MSE objective of a group: exact for small groups, histogram-based for large ones.
std::function<double(float)> mse_objective(const float* w, int64_t n, float mx, int bits,
                                           Grid grid) {
  if (n <= kExactLimit) return [=](float a) { return quantization_mse(w, n, a, bits, grid); };
  auto h = std::make_shared<Histogram>(abs_histogram(w, n, mx, kHistBins));
  const int32_t qmax = UniformQuantizer(bits, grid).qmax();
  const bool midrise = grid == Grid::kMidrise;
  return [h, qmax, n, midrise](float a) {
    const double s = a / static_cast<double>(qmax);
    double err = 0;
    for (size_t b = 0; b < h->count.size(); ++b) {
      if (h->count[b] == 0) continue;
      const double v = h->centre[b];
      const double q = v >= a    ? a
                       : midrise ? (2 * std::nearbyint((v / s - 1) / 2) + 1) * s
                                 : std::nearbyint(v / s) * s;
      err += h->count[b] * (v - q) * (v - q);
    }
    return err / static_cast<double>(n);
  };
}

float mse_alpha(const float* w, int64_t n, float mx, int bits, Grid grid) {
  auto f = mse_objective(w, n, mx, bits, grid);
  const int K = 20;
  int best = K;
  double best_err = f(mx);
  for (int k = 1; k < K; ++k) {
    const double e = f(mx * k / K);
    if (e < best_err) best_err = e, best = k;
  }
  const double lo = mx * std::max(best - 1, 0) / K, hi = mx * std::min(best + 1, K) / K;
  float alpha = mx * best / K;
  for (int k = 1; k < K; ++k) {
    const float a = static_cast<float>(lo + (hi - lo) * k / K);
    if (a <= 0) continue;
    const double e = f(a);
    if (e < best_err) best_err = e, alpha = a;
  }
  return alpha;
}

float percentile_alpha(const float* w, int64_t n, double p) {
  std::vector<float> a(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) a[static_cast<size_t>(i)] = std::fabs(w[i]);
  int64_t rank = static_cast<int64_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
  rank = std::min(std::max<int64_t>(rank, 1), n);
  std::nth_element(a.begin(), a.begin() + (rank - 1), a.end());
  return a[static_cast<size_t>(rank - 1)];
}

double minimise(const std::function<double(double)>& f, double lo, double hi) {
  // Golden-section search (both objectives are unimodal in α).
  const double g = (std::sqrt(5.0) - 1) / 2;
  double a = lo, b = hi;
  for (int it = 0; it < 200; ++it) {
    const double c = b - g * (b - a), d = a + g * (b - a);
    if (f(c) < f(d))
      b = d;
    else
      a = c;
  }
  return (a + b) / 2;
}

float aciq_alpha(const float* w, int64_t n, float mx, int bits, Grid grid) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += w[i];
  mean /= static_cast<double>(n);
  double b = 0, var = 0;
  for (int64_t i = 0; i < n; ++i) {
    b += std::fabs(w[i] - mean);
    var += (w[i] - mean) * (w[i] - mean);
  }
  b /= static_cast<double>(n);
  const double sigma = std::sqrt(var / static_cast<double>(n));
  const float al = std::min<float>(mx, static_cast<float>(aciq_laplace_coefficient(bits) * b));
  const float ag = std::min<float>(mx, static_cast<float>(aciq_gauss_coefficient(bits) * sigma));
  if (al <= 0 || ag <= 0) return mx;
  auto f = mse_objective(w, n, mx, bits, grid);
  return f(al) <= f(ag) ? al : ag;
}

float kl_alpha(const float* w, int64_t n, float mx, int bits, Grid grid) {
  // The grid's levels on the positive side (midtread: 0 and qmax more; midrise: 2^(b−1)).
  const int64_t levels =
      grid == Grid::kMidrise ? int64_t{1} << (bits - 1) : UniformQuantizer(bits).qmax() + 1;
  const int64_t bins = std::min<int64_t>(kHistBins, std::max<int64_t>(8 * levels, n / 4));
  if (levels >= bins) return mx;
  const Histogram h = abs_histogram(w, n, mx, static_cast<int>(bins));
  const int64_t candidates = std::min<int64_t>(128, bins - levels + 1);
  double best_kl = INFINITY;
  int64_t best_i = bins;
  std::vector<double> p, q;
  for (int64_t c = 0; c < candidates; ++c) {
    const int64_t i = levels + (bins - levels) * c / std::max<int64_t>(candidates - 1, 1);
    p.assign(h.count.begin(), h.count.begin() + i);
    for (int64_t j = i; j < bins; ++j)
      p[static_cast<size_t>(i - 1)] += h.count[static_cast<size_t>(j)];
    // Merge the first i bins (unclipped counts) into `levels` groups, spread over non-empty bins.
    q.assign(static_cast<size_t>(i), 0);
    for (int64_t l = 0; l < levels; ++l) {
      const int64_t b0 = l * i / levels, b1 = (l + 1) * i / levels;
      double total = 0;
      int64_t nonzero = 0;
      for (int64_t j = b0; j < b1; ++j) {
        total += h.count[static_cast<size_t>(j)];
        nonzero += h.count[static_cast<size_t>(j)] > 0;
      }
      for (int64_t j = b0; j < b1; ++j)
        if (h.count[static_cast<size_t>(j)] > 0) q[static_cast<size_t>(j)] = total / nonzero;
    }
    double ps = 0, qs = 0;
    for (int64_t j = 0; j < i; ++j)
      ps += p[static_cast<size_t>(j)], qs += q[static_cast<size_t>(j)];
    if (ps == 0 || qs == 0) continue;
    double kl = 0;
    for (int64_t j = 0; j < i; ++j) {
      const double pj = p[static_cast<size_t>(j)] / ps;
      if (pj == 0) continue;
      const double qj = q[static_cast<size_t>(j)] / qs;
      kl += qj > 0 ? pj * std::log(pj / qj) : pj * std::log(pj / 1e-12);  // smoothed
    }
    if (kl < best_kl) best_kl = kl, best_i = i;
  }
  return static_cast<float>(std::min<double>(mx, (best_i + 0.5) * h.width));
}

}  // namespace

ClipRule ClipRule::parse(const std::string& s) {
  const auto colon = s.find(':');
  const std::string name = s.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : s.substr(colon + 1);
  auto number = [&](const char* what) {
    try {
      size_t used = 0;
      const double v = std::stod(arg, &used);
      if (used != arg.size()) throw std::invalid_argument("");
      return v;
    } catch (const std::exception&) {
      throw std::invalid_argument("clip rule '" + s + "': " + what + " must be a number");
    }
  };
  ClipRule r;
  if (name == "max" && arg.empty()) {
    r.kind = Kind::kMax;
  } else if (name == "mse" && arg.empty()) {
    r.kind = Kind::kMse;
  } else if (name == "aciq" && arg.empty()) {
    r.kind = Kind::kAciq;
  } else if (name == "kl" && arg.empty()) {
    r.kind = Kind::kKl;
  } else if (name == "fixed" && colon != std::string::npos) {
    r.kind = Kind::kFixed;
    r.param = number("c");
    if (!(r.param > 0 && r.param <= 1))
      throw std::invalid_argument("clip rule '" + s + "': c must be in (0, 1]");
  } else if (name == "percentile" && colon != std::string::npos) {
    r.kind = Kind::kPercentile;
    r.param = number("p");
    if (!(r.param > 0 && r.param <= 100))
      throw std::invalid_argument("clip rule '" + s + "': p must be in (0, 100]");
  } else {
    throw std::invalid_argument("unknown clip rule '" + s +
                                "'; valid values: max, fixed:C (0<C<=1), mse, aciq, kl, "
                                "percentile:P (0<P<=100)");
  }
  return r;
}

std::string ClipRule::to_string() const {
  auto num = [](double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  };
  switch (kind) {
    case Kind::kMax:
      return "max";
    case Kind::kFixed:
      return "fixed:" + num(param);
    case Kind::kMse:
      return "mse";
    case Kind::kAciq:
      return "aciq";
    case Kind::kKl:
      return "kl";
    case Kind::kPercentile:
      return "percentile:" + num(param);
  }
  return "?";
}

double quantization_mse(const float* w, int64_t n, float alpha, int bits, Grid grid) {
  const UniformQuantizer q(bits, grid);
  const float s = q.step(alpha);
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float d = w[i] - static_cast<float>(reference_code(w[i], s, q.qmax(), grid)) * s;
    err += static_cast<double>(d) * d;
  }
  return n > 0 ? err / static_cast<double>(n) : 0;
}

double aciq_laplace_coefficient(int bits) {
  const double noise = 1.0 / (3.0 * std::pow(4.0, bits));
  return minimise([&](double a) { return 2 * std::exp(-a) + a * a * noise; }, 0.01, 40);
}

double aciq_gauss_coefficient(int bits) {
  const double noise = 1.0 / (3.0 * std::pow(4.0, bits));
  auto tail = [](double a) {
    const double phi = std::exp(-a * a / 2) / std::sqrt(2 * M_PI);
    const double Q = 0.5 * std::erfc(a / std::sqrt(2.0));
    return 2 * ((1 + a * a) * Q - a * phi);
  };
  return minimise([&](double a) { return tail(a) + a * a * noise; }, 0.01, 20);
}

float choose_alpha(const ClipRule& rule, const float* w, int64_t n, int bits, Grid grid) {
  UniformQuantizer check(bits, grid);  // validates bits
  if (n == 0) return 0;
  const float mx = max_abs(w, n);
  if (mx == 0) return 0;
  switch (rule.kind) {
    case ClipRule::Kind::kMax:
      return mx;
    case ClipRule::Kind::kFixed:
      return static_cast<float>(rule.param * mx);
    case ClipRule::Kind::kPercentile:
      return percentile_alpha(w, n, rule.param);
    case ClipRule::Kind::kMse:
      return mse_alpha(w, n, mx, bits, grid);
    case ClipRule::Kind::kAciq:
      return aciq_alpha(w, n, mx, bits, grid);
    case ClipRule::Kind::kKl:
      return kl_alpha(w, n, mx, bits, grid);
  }
  return mx;
}

}  // namespace lmquant
