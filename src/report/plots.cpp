#include "report/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "quant/uniform_quantizer.h"

namespace lmquant {
namespace {

std::string run_gnuplot(const std::string& png, std::string script, PlotGeometry* geometry) {
  const std::string path = png + ".gp", geom = png + ".geom";
  if (geometry)  // the data area gnuplot used, in pixels of the image
    script += "set print '" + geom +
              "'\nprint GPVAL_TERM_XMIN, GPVAL_TERM_XMAX, GPVAL_TERM_YMIN, GPVAL_TERM_YMAX, "
              "GPVAL_TERM_XSIZE / GPVAL_TERM_SCALE, GPVAL_TERM_YSIZE / GPVAL_TERM_SCALE\n";
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
    std::remove(geom.c_str());
    return "gnuplot failed for " + png + " (install gnuplot-nox; tools/setup.sh does)" +
           (ss.str().empty() ? "" : ": " + ss.str().substr(0, 200));
  }
  std::remove((png + ".log").c_str());
  if (geometry) {
    std::ifstream g(geom);
    double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
    g >> x0 >> x1 >> y0 >> y1 >> geometry->width >> geometry->height;
    geometry->data_width = x1 - x0;
    geometry->data_height = y1 - y0;
    std::remove(geom.c_str());
  }
  return "";
}

std::string header(const std::string& png, int w = 900, int h = 560) {
  return "set terminal pngcairo size " + std::to_string(w) + "," + std::to_string(h) +
         " noenhanced\nset output '" + png +
         "'\nset grid\n"
         // The key under the data area, two columns: its labels' length never narrows the plot.
         "set key below horizontal maxcols 2\n";
}

using Series = std::map<std::string, std::map<double, double>>;  // line name -> x -> y

// Writes the series as gnuplot data blocks, plots them as lines (plus `extra` plot items) after
// `settings`, and removes the data file.
std::string plot_series(const std::string& png, const Series& lines, const std::string& settings,
                        const std::string& extra, PlotGeometry* geometry) {
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
  const std::string msg = run_gnuplot(png, header(png) + settings + plot + extra + "\n", geometry);
  std::remove(dat.c_str());
  return msg;
}

// The name of each line across bit widths (keyed by the label without bits): the configuration's
// short family (the full label is in the report's tables); lines of one family that differ
// otherwise are numbered "family (2)", "family (3)" in the records' order.
std::map<std::string, std::string> line_names(const std::vector<Record>& records) {
  std::map<std::string, std::string> name;
  std::map<std::string, int> used;
  for (const auto& r : records) {
    if (r.is_float()) continue;
    const std::string key = r.config.label(/*with_bits=*/false);
    if (name.count(key)) continue;
    const std::string f = r.config.family();
    const int n = ++used[f];
    name[key] = n == 1 ? f : f + " (" + std::to_string(n) + ")";
  }
  return name;
}

// A y axis that reads at a glance: linear unless the values span more than 3x.
std::string y_axis(const Series& lines, double extra_y, const std::string& what) {
  double lo = extra_y > 0 ? extra_y : INFINITY, hi = extra_y;
  for (const auto& [name, pts] : lines)
    for (const auto& [x, y] : pts) lo = std::min(lo, y), hi = std::max(hi, y);
  if (hi > 3 * lo) return "set logscale y\nset ylabel '" + what + " (log scale)'\n";
  return "set ylabel '" + what + "'\n";
}

std::string split_name(const std::vector<Record>& records) {
  return records.empty() ? std::string("perplexity") : records.front().source.split + " perplexity";
}

}  // namespace

std::string plot_perplexity_vs_bits(const std::vector<Record>& records, const std::string& png,
                                    PlotGeometry* geometry) {
  Series lines;
  double fl = 0;
  std::set<int> widths;
  const auto names = line_names(records);
  for (const auto& r : records) {
    if (r.is_float()) {
      fl = r.perplexity();
      continue;
    }
    lines[names.at(r.config.label(false))][r.config.bits] = r.perplexity();
    widths.insert(r.config.bits);
  }
  if (widths.size() < 2) return "fewer than two bit widths: no perplexity-vs-bits plot";
  return plot_series(
      png, lines,
      y_axis(lines, fl, split_name(records)) +
          "set xlabel 'bit width (--bits)'\nset xtics 1\n"
          "set title 'Perplexity vs bit width'\n",
      fl > 0 ? ", " + std::to_string(fl) + " with lines dashtype 2 lc rgb 'black' title 'float'"
             : "",
      geometry);
}

std::string plot_perplexity_vs_overhead(const std::vector<Record>& records, const std::string& png,
                                        PlotGeometry* geometry) {
  // One line per OCS variant (bits, clip rule, granularity, grid-aware), starting at the
  // clip-only result of the same bits, rule and granularity (0% overhead) when there is one.
  Series lines;
  auto key = [](const QuantConfig& q, bool grid) {
    return std::to_string(q.bits) + "b " + q.clip.to_string() + " " + to_string(q.granularity) +
           (grid ? " grid-aware" : "");
  };
  for (const auto& r : records)
    if (r.config.method == Method::kOcs)
      lines[key(r.config, r.config.grid_aware)][r.macs_overhead_pct()] = r.perplexity();
  if (lines.empty()) return "no OCS results to plot";
  for (const auto& r : records) {
    if (r.config.method != Method::kClip) continue;
    for (bool g : {false, true}) {
      auto it = lines.find(key(r.config, g));
      if (it != lines.end()) it->second[0.0] = r.perplexity();
    }
  }
  return plot_series(png, lines,
                     y_axis(lines, 0, split_name(records)) +
                         "set xlabel 'multiply-add overhead (%)'\n"
                         "set title 'OCS: perplexity vs overhead (0% = clipping alone)'\n",
                     "", geometry);
}

std::string plot_weight_histograms(const std::string& title, const torch::Tensor& before,
                                   float alpha_before, const torch::Tensor& after,
                                   float alpha_after, int bits, const std::string& png,
                                   PlotGeometry* geometry) {
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
  std::string script = header(png, 1000, 800) + "set multiplot layout 2,1 title '" + title + " (" +
                       std::to_string(bits) +
                       "-bit grid dotted)'\nset logscale y\n"
                       "set ylabel 'count + 1 (log)'\nset xrange [" +
                       std::to_string(-lim) + ":" + std::to_string(lim) + "]\n";
  script += grid(alpha_before, "red") +
            "set title 'before OCS: max|w| = " + std::to_string(before.abs().max().item<float>()) +
            "'\nplot '" + dat +
            "' using 1:2 with boxes fs solid 0.5 lc rgb 'steelblue' notitle\nunset arrow\n";
  script += grid(alpha_after, "red") +
            "set title 'after OCS: max|w| = " + std::to_string(after.abs().max().item<float>()) +
            "'\nset xlabel 'weight'\nplot '" + dat +
            "' using 1:3 with boxes fs solid 0.5 lc rgb 'dark-orange' notitle\nunset multiplot\n";
  const std::string msg = run_gnuplot(png, script, geometry);
  std::remove(dat.c_str());
  return msg;
}

}  // namespace lmquant
