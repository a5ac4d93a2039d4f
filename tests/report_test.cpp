// Report records, their views, the whole-or-nothing report directory, and plots.
#include "report/report.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "report/plots.h"
#include "test_utils.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;
using namespace lmquant;
using lmquant::test::TempDir;

namespace {
Record rec(Method method, const std::string& clip, int bits, double ppl, double ratio = 0) {
  Record r;
  r.source.model = "m.lmq", r.source.model_sha256 = "abc", r.source.split = "test";
  r.config.method = method;
  if (method != Method::kFloat) r.config.clip = ClipRule::parse(clip);
  r.config.bits = bits;
  r.config.expand_ratio = ratio;
  r.eval.perplexity = ppl, r.eval.loss = std::log(ppl), r.eval.tokens = 1000;
  r.float_perplexity = 100;
  r.vs_float.delta_pct = ppl - 100;
  r.params_before = r.macs_before = 1000;
  r.params_after = r.macs_after = 1000 + static_cast<int64_t>(1000 * ratio);
  return r;
}
std::vector<Record> sample() {
  Record o = rec(Method::kOcs, "max", 4, 110, 0.05);
  o.vs_float = {10.0, 2.5, 17.25, 2000};
  Record c = rec(Method::kClip, "mse", 4, 120);
  c.vs_float = {20.0, -1.0, 40.0, 2000};
  return {rec(Method::kFloat, "", 32, 100), c, o};
}
}  // namespace

TEST(Report, ViewsOfTheSameRecords) {
  auto rs = sample();
  const auto md = markdown_table(rs);
  EXPECT_NE(md.find("| ocs r=0.05 max 4b tensor | 110.00 | +10.00% [+2.50, +17.25] | 5.00% |"),
            std::string::npos)
      << md;
  // An interval that contains 0 is marked.
  EXPECT_NE(md.find("+20.00% [-1.00, +40.00] not significant"), std::string::npos) << md;
  const auto c = csv(rs);
  EXPECT_EQ(std::count(c.begin(), c.end(), '\n'), 4);
  EXPECT_NE(c.find(",10,2.5,17.25,1,"), std::string::npos) << c;  // delta_pct, ci, significant
  auto j = records_json(rs);
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(Record::from_json(j[2]).label(), "ocs r=0.05 max 4b tensor");
  EXPECT_EQ(j[2]["delta_pct"], 10.0);
  EXPECT_EQ(j[2]["ci_low"], 2.5);
  EXPECT_EQ(j[2]["ci_high"], 17.25);
}

TEST(Report, ConsoleColumnsFitTheirContent) {
  auto rs = sample();
  rs[1].config.expand_ratio = 0;
  rs[1].config.clip = ClipRule::parse("percentile:99.99");
  rs[1].config.granularity = Granularity::kGate;  // a label longer than 26 characters
  const std::string t = console_table(rs);
  std::vector<size_t> starts;  // where the perplexity column starts on each line
  std::istringstream in(t);
  std::string line;
  std::getline(in, line);
  const size_t header_end = line.find("perplexity") + std::string("perplexity").size();
  while (std::getline(in, line)) {
    // Right-aligned numbers: the perplexity ends under the header's end.
    const auto pos = line.find_first_of("0123456789", line.find("  "));
    const auto end = line.find(' ', pos);
    EXPECT_EQ(end, header_end) << t;
  }
}

TEST(Report, ReadsJsonArraysAndJsonLines) {
  auto rs = sample();
  const std::string arr = records_json(rs).dump(2);
  std::string lines;
  for (const auto& r : rs) lines += r.to_json().dump() + "\n";
  for (const auto& text : {arr, lines}) {
    const auto back = read_records(text);
    ASSERT_EQ(back.size(), 3u);
    EXPECT_EQ(back[1].label(), rs[1].label());
    EXPECT_EQ(back[2].vs_float.ci_high, 17.25);
  }
}

TEST(Report, DirectoryIsWrittenWholeOrNotAtAll) {
  TempDir tmp;
  const std::string dir = tmp.file("rep");
  write_report_dir(dir, [](const std::string& d) { write_file_atomic(d + "/a.txt", "one"); });
  EXPECT_EQ(read_file(dir + "/a.txt"), "one");
  // A failing fill leaves the previous report untouched and no staging folder behind.
  EXPECT_THROW(write_report_dir(dir,
                                [](const std::string& d) {
                                  write_file_atomic(d + "/a.txt", "two");
                                  throw std::runtime_error("interrupted");
                                }),
               std::runtime_error);
  EXPECT_EQ(read_file(dir + "/a.txt"), "one");
  int entries = 0;
  for (auto& e : fs::directory_iterator(tmp.path())) entries += 1, (void)e;
  EXPECT_EQ(entries, 1);
  // A replacement is whole too.
  write_report_dir(dir, [](const std::string& d) { write_file_atomic(d + "/b.txt", "new"); });
  EXPECT_FALSE(fs::exists(dir + "/a.txt"));
  EXPECT_TRUE(fs::exists(dir + "/b.txt"));
}

TEST(Report, UnwritableParentIsAClearError) {
  EXPECT_THROW_MESSAGE(write_report_dir("/proc/lmquant-report", [](const std::string&) {}),
                       std::runtime_error,
                       "cannot write the report directory /proc/lmquant-report");
}

TEST(Plots, GnuplotRendersPngs) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot not installed (tools/setup.sh installs gnuplot-nox)";
  TempDir tmp;
  auto rs = sample();
  // One bit width: no bits plot, said why.
  EXPECT_NE(plot_perplexity_vs_bits(rs, tmp.file("none.png")), "");
  EXPECT_FALSE(fs::exists(tmp.file("none.png")));
  rs.push_back(rec(Method::kClip, "mse", 3, 300));
  Record o2 = rec(Method::kOcs, "mse", 4, 105, 0.1);
  rs.push_back(o2);  // joins clip mse 4b at 0% overhead
  EXPECT_EQ(plot_perplexity_vs_bits(rs, tmp.file("bits.png")), "");
  EXPECT_EQ(plot_perplexity_vs_overhead(rs, tmp.file("over.png")), "");
  auto w = torch::randn({50, 20});
  w[0][0] = 8;
  EXPECT_EQ(plot_weight_histograms("w", w, 8, w / 2, 4, 4, tmp.file("hist.png")), "");
  for (auto f : {"bits.png", "over.png", "hist.png"}) {
    const std::string b = read_file(tmp.file(f));
    ASSERT_GT(b.size(), 1000u) << f;
    EXPECT_EQ(b.substr(1, 3), "PNG") << f;
  }
}

TEST(Plots, LongestLabelsKeepTheDataArea) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot not installed (tools/setup.sh installs gnuplot-nox)";
  TempDir tmp;
  // The longest configurations lmquant builds: every setting that adds to a label, twice (two
  // lines of one family), at three widths, beside plain ones and the float model.
  auto longest = [](int bits, bool second) {
    Record r = rec(Method::kClip, "percentile:99.99", bits, 200.0 - 10 * bits + (second ? 3 : 0));
    QuantConfig& q = r.config;
    q.rounding = Rounding::kGptq;
    q.granularity = Granularity::Group(128);
    q.grid = Grid::kMidrise;
    q.half_scales = true;
    q.rotate = true, q.rotation_seed = 123456789;
    for (const char* m : {"input.l0", "recurrent.l0", "input.l1", "recurrent.l1"})
      q.matrix_bits[m] = 6, q.matrix_granularity[m] = Granularity::Group(64);
    q.row_widths = {1, 2, 3, 4, 5, 6, 7};
    q.row_budget = 2.19844, q.bits_per_weight = 2.49999;
    q.matrix_row_budget = {{"embedding", 2.12345}, {"decoder", 2.87654}};
    q.row_sensitivity = RowSensitivity::kFrequency;
    q.damp = 0.0125, q.gptq_order = GptqOrder::kNatural, q.calib_sequences = 1024;
    q.gptq_embedding = true, q.fisher_decoder = !second, q.gptq_decoder = second;
    q.alpha_by_output = second;
    q.repeat = 3;
    EXPECT_NO_THROW(q.validate()) << q.label();
    EXPECT_GT(q.label().size(), 200u);
    return r;
  };
  std::vector<Record> rs = {rec(Method::kFloat, "", 32, 100)};
  for (int b : {3, 4, 5}) {
    rs.push_back(longest(b, false));
    rs.push_back(longest(b, true));
    rs.push_back(rec(Method::kClip, "max", b, 300.0 - 20 * b));
  }
  PlotGeometry g;
  ASSERT_EQ(plot_perplexity_vs_bits(rs, tmp.file("bits.png"), &g), "");
  EXPECT_NEAR(g.width, 900, 1);  // gnuplot counts 0..899
  EXPECT_GT(g.data_width, 0.75 * g.width) << g.data_width;
  EXPECT_GT(g.data_fraction(), 0.5) << g.data_width << " x " << g.data_height;
  // The OCS plot and the histograms the same way.
  std::vector<Record> ocs = {rec(Method::kFloat, "", 32, 100)};
  for (double r : {0.01, 0.02, 0.05, 0.1})
    for (const char* c : {"percentile:99.99", "max", "mse", "aciq", "kl"})
      ocs.push_back(rec(Method::kOcs, c, 4, 110 + 100 * r, r));
  ASSERT_EQ(plot_perplexity_vs_overhead(ocs, tmp.file("over.png"), &g), "");
  EXPECT_GT(g.data_fraction(), 0.5) << g.data_width << " x " << g.data_height;
  auto w = torch::randn({50, 20});
  ASSERT_EQ(plot_weight_histograms("recurrent.l0", w, 3, w / 2, 2, 4, tmp.file("h.png"), &g), "");
  EXPECT_GT(g.data_width, 0.75 * g.width);
}
