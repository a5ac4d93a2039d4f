#include "report/plots.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "quant/uniform_quantizer.h"

namespace lmquant {
namespace {

std::string run_gnuplot(const std::string& png, const std::string& script) {
  const std::string path = png + ".gp";
  std::ofstream(path) << script;
  const std::string cmd = "gnuplot '" + path + "' 2>'" + png + ".log'";
  const int rc = std::system(cmd.c_str());
  std::remove(path.c_str());
  if (rc != 0) {
    std::ifstream log(png + ".log");
    std::stringstream ss;
    ss << log.rdbuf();
    std::remove((png + ".log").c_str());
    std::remove(png.c_str());
    return "gnuplot failed for " + png + " (install gnuplot-nox; tools/setup.sh does)" +
           (ss.str().empty() ? "" : ": " + ss.str().substr(0, 200));
  }
  std::remove((png + ".log").c_str());
  return "";
}

std::string header(const std::string& png, int w = 900, int h = 560) {
  return "set terminal pngcairo size " + std::to_string(w) + "," + std::to_string(h) +
         " noenhanced\nset output '" + png + "'\nset grid\nset key outside right\n";
}

using Series = std::map<std::string, std::map<double, double>>;  // line name -> x -> y

// Writes the series as gnuplot data blocks, plots them as lines (plus `extra` plot items) after
// `settings`, and removes the data file.
std::string plot_series(const std::string& png, const Series& lines, const std::string& settings,
                        const std::string& extra = "") {
  const std::string dat = png + ".dat";
  std::ofstream d(dat);
  std::string plot = "plot ";
  int idx = 0;
  for (const auto& [name, pts] : lines) {
    for (const auto& [x, y] : pts) d << x << " " << y << "\n";
    d << "\n\n";
    plot += std::string(idx ? ", " : "") + "'" + dat + "' index " + std::to_string(idx) +
            " with linespoints title '" + name + "'";
    ++idx;
  }
  d.close();
  const std::string msg = run_gnuplot(png, header(png) + settings + plot + extra + "\n");
  std::remove(dat.c_str());
  return msg;
}

std::string variant(const Record& r) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", r.expand_ratio);
  std::string s = r.method == "ocs" ? std::string("ocs r=") + buf + " " + r.clip : "clip " + r.clip;
  if (r.grid_aware) s += " grid";
  if (!r.granularity.empty() && r.granularity != "tensor") s += " " + r.granularity;
  return s;
}

}  // namespace

std::string plot_perplexity_vs_bits(const std::vector<Record>& records, const std::string& png) {
  Series lines;
  double fl = 0;
  for (const auto& r : records) {
    if (r.method == "float") {
      fl = r.perplexity;
      continue;
    }
    lines[variant(r)][r.bits] = r.perplexity;
  }
  if (lines.empty()) return "no quantized results to plot";
  return plot_series(png, lines,
                     "set logscale y\nset xlabel 'bits'\nset ylabel 'test perplexity (log)'\n"
                     "set title 'Perplexity vs bit width'\n",
                     fl > 0 ? ", " + std::to_string(fl) +
                                  " with lines dashtype 2 lc rgb 'black' title 'float'"
                            : "");
}

std::string plot_perplexity_vs_overhead(const std::vector<Record>& records, const std::string& png) {
  // One line per (bits, clip rule, grid-aware) OCS variant, starting at the clip-only result of
  // the same bits and rule (0% overhead) when there is one.
  Series lines;
  for (const auto& r : records)
    if (r.method == "ocs")
      lines[std::to_string(r.bits) + "b " + r.clip + (r.grid_aware ? " grid" : "")]
           [r.macs_overhead_percent] = r.perplexity;
  if (lines.empty()) return "no OCS results to plot";
  for (const auto& r : records) {
    if (r.method != "clip") continue;
    for (const char* g : {"", " grid"}) {
      auto it = lines.find(std::to_string(r.bits) + "b " + r.clip + g);
      if (it != lines.end()) it->second[0.0] = r.perplexity;
    }
  }
  return plot_series(png, lines,
                     "set xlabel 'multiply-add overhead (%)'\nset ylabel 'test perplexity'\n"
                     "set title 'OCS: perplexity vs overhead (0% = clipping alone)'\n");
}

std::string plot_weight_histograms(const std::string& title, const torch::Tensor& before,
                                   float alpha_before, const torch::Tensor& after,
                                   float alpha_after, int bits, const std::string& png) {
  const UniformQuantizer q(bits);
  const int bins = 200;
  const float lim = std::max(before.abs().max().item<float>(), 1e-12f);
  auto hist = [&](const torch::Tensor& w) {
    return torch::histc(w.to(torch::kCPU, torch::kFloat).flatten(), bins, -lim, lim);
  };
  auto hb = hist(before), ha = hist(after);
  const std::string dat = png + ".dat";
  std::ofstream d(dat);
  for (int i = 0; i < bins; ++i)
    d << -lim + (i + 0.5) * 2 * lim / bins << " " << hb[i].item<float>() + 1 << " "
      << ha[i].item<float>() + 1 << "\n";
  d.close();
  auto grid = [&](float alpha, const char* color) {
    std::string s;
    const float step = q.step(alpha);
    if (step <= 0) return s;
    for (int k = -q.qmax(); k <= q.qmax(); ++k)
      s += "set arrow from " + std::to_string(k * step) + ", graph 0 to " +
           std::to_string(k * step) + ", graph 1 nohead lc rgb '" + color + "' dt 3\n";
    return s;
  };
  std::string script = header(png, 1000, 800) + "set multiplot layout 2,1 title '" + title +
                       " (" + std::to_string(bits) + "-bit grid dotted)'\nset logscale y\n"
                       "set ylabel 'count + 1 (log)'\nset xrange [" + std::to_string(-lim) + ":" +
                       std::to_string(lim) + "]\n";
  script += grid(alpha_before, "red") + "set title 'before OCS: max|w| = " +
            std::to_string(before.abs().max().item<float>()) + "'\nplot '" + dat +
            "' using 1:2 with boxes fs solid 0.5 lc rgb 'steelblue' notitle\nunset arrow\n";
  script += grid(alpha_after, "red") + "set title 'after OCS: max|w| = " +
            std::to_string(after.abs().max().item<float>()) + "'\nset xlabel 'weight'\nplot '" +
            dat + "' using 1:3 with boxes fs solid 0.5 lc rgb 'dark-orange' notitle\nunset multiplot\n";
  const std::string msg = run_gnuplot(png, script);
  std::remove(dat.c_str());
  return msg;
}

}  // namespace lmquant
