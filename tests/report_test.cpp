// Report records, their views, the whole-or-nothing report directory, and plots.
#include <filesystem>
#include <fstream>

#include "report/plots.h"
#include "report/report.h"
#include "test_utils.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;
using namespace lmquant;
using lmquant::test::TempDir;

namespace {
std::vector<Record> sample() {
  Record f;
  f.perplexity = f.float_perplexity = 100;
  Record c = f, o = f;
  c.method = "clip", c.clip = "mse", c.bits = 4, c.granularity = "tensor", c.perplexity = 120;
  c.delta_percent = 20;
  o.method = "ocs", o.clip = "max", o.bits = 4, o.granularity = "tensor", o.expand_ratio = 0.05;
  o.perplexity = 110, o.delta_percent = 10, o.macs_overhead_percent = 5;
  return {f, c, o};
}
}  // namespace

TEST(Report, ViewsOfTheSameRecords) {
  auto rs = sample();
  const auto md = markdown_table(rs);
  EXPECT_NE(md.find("| ocs | max | 0.05 | 4 | tensor | 110.00 | +10.00% | 5.00% |"), std::string::npos) << md;
  const auto c = csv(rs);
  EXPECT_EQ(std::count(c.begin(), c.end(), '\n'), 4);
  auto j = records_json(rs);
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(Record::from_json(j[2]).label(), "ocs r=0.05 max");
  EXPECT_EQ(best_quantized(rs)->label(), "ocs r=0.05 max");
  // Sweep lines nest the configuration.
  nlohmann::json line = {{"config", {{"method", "clip"}, {"bits", 3}, {"clip", "kl"}}},
                         {"perplexity", 150.0}};
  auto r = Record::from_json(line);
  EXPECT_EQ(r.bits, 3);
  EXPECT_EQ(r.label(), "clip kl");
}

TEST(Report, DirectoryIsWrittenWholeOrNotAtAll) {
  TempDir tmp;
  const std::string dir = tmp.file("rep");
  write_report_dir(dir, [](const std::string& d) { write_file_atomic(d + "/a.txt", "one"); });
  EXPECT_EQ(read_file(dir + "/a.txt"), "one");
  // A failing fill leaves the previous report untouched and no staging folder behind.
  EXPECT_THROW(write_report_dir(dir, [](const std::string& d) {
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
  EXPECT_THROW_MESSAGE(
      write_report_dir("/proc/lmquant-report", [](const std::string&) {}), std::runtime_error,
      "cannot write the report directory /proc/lmquant-report");
}

TEST(Plots, GnuplotRendersPngs) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot not installed (tools/setup.sh installs gnuplot-nox)";
  TempDir tmp;
  auto rs = sample();
  Record c3 = rs[1];
  c3.bits = 3, c3.perplexity = 300;
  rs.push_back(c3);
  Record o2 = rs[2];
  o2.clip = "mse", o2.expand_ratio = 0.1, o2.macs_overhead_percent = 10, o2.perplexity = 105;
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
