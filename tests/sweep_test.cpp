// Sweeps in shards (src/experiment/sweep.h): dealing cells to shards, the Slurm environment,
// sharded runs that merge back into the single-process sweep, and every refusal of the merge.
// (tools/slurm/test.sh runs the same through a real Slurm.)
#include "experiment/sweep.h"

#include <fstream>
#include <map>

#include "corpus/corpus.h"
#include "experiment/experiment.h"
#include "report/report.h"
#include "test_utils.h"

using namespace lmquant;
using lmquant::test::TempDir;

namespace {

LoadedModel tiny_model(const Corpus& corpus) {
  torch::manual_seed(5);
  LstmLmConfig c;
  c.vocab = corpus.vocab.size();
  c.emb = c.hidden = 12;
  LoadedModel l;
  l.model = LstmLm(c);
  l.model->eval();
  l.path = "tiny";
  l.file_sha256 = "0123";
  return l;
}

// A grid whose innermost loop alternates (nearest, gptq), the case plain i mod N deals badly.
std::vector<QuantConfig> small_grid() {
  SweepGrid g;
  g.bits = {3, 4};
  g.methods = {Method::kClip, Method::kOcs};
  g.clips = {ClipRule::parse("max")};
  g.expand_ratios = {0.1};
  g.roundings = {Rounding::kNearest, Rounding::kGptq};
  g.base.calib_sequences = 8;
  return g.cells();
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

void write_lines(const std::string& path, const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  lmquant::test::write_text(path, s);
}

struct Fixture {
  Corpus corpus = load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
  LoadedModel model = tiny_model(corpus);
  EvalContext ctx{model, corpus, Split::kValid};
  std::vector<QuantConfig> cells = small_grid();

  std::string run_shard(const TempDir& tmp, int64_t i, int64_t n) {
    SweepOptions o;
    o.shard.index = i;
    o.shard.count = n;
    o.out = tmp.file("r." + o.shard.file_tag() + ".jsonl");
    run_sweep(ctx, cells, o);
    return o.out;
  }
};

}  // namespace

TEST(Sweep, ShardsParseAndNameTheRule) {
  const Shard s = parse_shard("2/5");
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 5);
  EXPECT_EQ(s.to_string(), "2/5");
  EXPECT_EQ(s.file_tag(), "shard-2-of-5");
  for (const char* bad : {"5/5", "1", "/4", "1/", "a/4", "-1/4", "1/0", "1/4/2", " 1/4"})
    EXPECT_THROW_MESSAGE(parse_shard(bad), std::invalid_argument, "0 <= I < N");
}

TEST(Sweep, CellsAreDealtInSnakeOrderEvenly) {
  // N = 3: 0 1 2 2 1 0 0 1 2 2 ...
  const std::vector<int64_t> want = {0, 1, 2, 2, 1, 0, 0, 1, 2, 2};
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(Shard::owner(i, 3), want[i]) << i;
  for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(Shard::owner(i, 1), 0);
  // Every shard gets floor(cells / N) or one more, and, with an alternating grid (even cells
  // cheap, odd ones dear), a share of each kind.
  for (int64_t n = 1; n <= 6; ++n)
    for (int64_t cells : {1, 7, 16, 33}) {
      std::vector<int64_t> count(static_cast<size_t>(n)), odd(static_cast<size_t>(n));
      for (int64_t i = 0; i < cells; ++i) {
        ++count[static_cast<size_t>(Shard::owner(i, n))];
        odd[static_cast<size_t>(Shard::owner(i, n))] += i % 2;
      }
      for (int64_t k = 0; k < n; ++k) {
        EXPECT_GE(count[k], cells / n);
        EXPECT_LE(count[k], cells / n + 1);
        if (cells >= 4 * n) EXPECT_GE(odd[k], 1) << "shard " << k << " of " << n;
      }
    }
}

TEST(Sweep, SlurmArrayEnvironmentGivesTheShard) {
  std::map<std::string, std::string> env;
  auto get = [&](const char* k) -> const char* {
    auto it = env.find(k);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  EXPECT_FALSE(shard_from_slurm(get).has_value());
  env["SLURM_ARRAY_TASK_ID"] = "2";
  EXPECT_FALSE(shard_from_slurm(get).has_value());  // no count: not an array task
  env["SLURM_ARRAY_TASK_COUNT"] = "4";
  EXPECT_EQ(shard_from_slurm(get)->to_string(), "2/4");
  env["SLURM_ARRAY_TASK_ID"] = "7";
  env["SLURM_ARRAY_TASK_MIN"] = "5";
  EXPECT_EQ(shard_from_slurm(get)->to_string(), "2/4");  // --array=5-8
  env["SLURM_ARRAY_TASK_ID"] = "9";                      // --array=5,9: a gap
  EXPECT_THROW_MESSAGE(shard_from_slurm(get), std::invalid_argument, "contiguous array");
  env["SLURM_ARRAY_TASK_ID"] = "x";
  EXPECT_THROW_MESSAGE(shard_from_slurm(get), std::invalid_argument, "not a task number");
}

TEST(Sweep, ShardsMergeIntoTheSingleProcessSweep) {
  Fixture f;
  TempDir tmp;
  SweepOptions whole;
  whole.out = tmp.file("single.jsonl");
  const auto single = run_sweep(f.ctx, f.cells, whole);
  ASSERT_EQ(single.size(), f.cells.size() + 1);
  std::vector<std::string> shards;
  for (int64_t i = 0; i < 3; ++i) shards.push_back(f.run_shard(tmp, i, 3));
  // Each shard holds its float record and its own cells, tagged with their place in the grid.
  size_t total = 0;
  for (int64_t i = 0; i < 3; ++i) {
    std::string text;
    for (const auto& l : lines_of(shards[static_cast<size_t>(i)])) text += l + "\n";
    const auto recs = read_records(text);
    ASSERT_FALSE(recs.empty());
    EXPECT_TRUE(recs.front().is_float());
    EXPECT_EQ(recs.front().sweep.grid.size(), f.cells.size());
    for (size_t k = 1; k < recs.size(); ++k) {
      EXPECT_EQ(recs[k].sweep.shard, i);
      EXPECT_EQ(recs[k].sweep.shards, 3);
      EXPECT_EQ(Shard::owner(recs[k].sweep.index, 3), i);
      EXPECT_EQ(recs[k].label(), f.cells[static_cast<size_t>(recs[k].sweep.index)].label());
    }
    total += recs.size() - 1;
  }
  EXPECT_EQ(total, f.cells.size());
  const auto merged = merge_sweep_shards({shards[2], shards[0], shards[1]});
  ASSERT_EQ(merged.size(), single.size());
  for (size_t k = 0; k < merged.size(); ++k) {
    EXPECT_EQ(merged[k].label(), single[k].label());
    EXPECT_EQ(merged[k].eval.loss, single[k].eval.loss) << merged[k].label();  // bit for bit
    EXPECT_EQ(merged[k].vs_float.ci_low, single[k].vs_float.ci_low);
  }
  // Idempotent: the merged file, alone or with its shards again, merges into the same records.
  std::string text;
  for (const auto& r : merged) text += r.to_json().dump() + "\n";
  lmquant::test::write_text(tmp.file("merged.jsonl"), text);
  for (const auto& inputs : std::vector<std::vector<std::string>>{
           {tmp.file("merged.jsonl")},
           {tmp.file("merged.jsonl"), shards[0], shards[1], shards[2]}}) {
    std::string again;
    for (const auto& r : merge_sweep_shards(inputs)) again += r.to_json().dump() + "\n";
    EXPECT_EQ(again, text);
  }
  // An unsharded sweep resumes from the merged file with nothing left to run.
  SweepOptions resume;
  resume.out = tmp.file("merged.jsonl");
  int ran = 0;
  resume.log = [&](const std::string&) { ++ran; };
  EXPECT_EQ(run_sweep(f.ctx, f.cells, resume).size(), single.size());
  EXPECT_EQ(ran, 0);
}

TEST(Sweep, MergeNamesMissingDuplicatedAndForeignRecords) {
  Fixture f;
  TempDir tmp;
  const std::string s0 = f.run_shard(tmp, 0, 2), s1 = f.run_shard(tmp, 1, 2);
  // A shard that never finished: its cells are missing, each named with the shard that owes it.
  auto lines = lines_of(s1);
  ASSERT_GE(lines.size(), 3u);
  write_lines(tmp.file("cut.jsonl"), {lines[0], lines[1]});
  try {
    merge_sweep_shards({s0, tmp.file("cut.jsonl")});
    ADD_FAILURE() << "merged a sweep with missing cells";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    const Record kept = Record::from_json(nlohmann::json::parse(lines[1]));
    size_t missing = 0;
    for (size_t i = 0; i < f.cells.size(); ++i) {
      if (Shard::owner(static_cast<int64_t>(i), 2) != 1 ||
          static_cast<int64_t>(i) == kept.sweep.index)
        continue;
      ++missing;
      EXPECT_NE(m.find("missing cell " + std::to_string(i) + " (" + f.cells[i].label() +
                       "), owed by shard 1/2"),
                std::string::npos)
          << m;
    }
    EXPECT_NE(m.find(std::to_string(missing) + " problems"), std::string::npos) << m;
    EXPECT_EQ(m.find("shard 0/2"), std::string::npos) << m;
  }
  // The same cell twice with different numbers.
  auto r = nlohmann::json::parse(lines[1]);
  r["loss"] = r["loss"].get<double>() + 1e-9;
  write_lines(tmp.file("dup.jsonl"), {r.dump()});
  EXPECT_THROW_MESSAGE(
      merge_sweep_shards({s0, s1, tmp.file("dup.jsonl")}), std::runtime_error,
      "is duplicated with different numbers: " + s1 + ":2 and " + tmp.file("dup.jsonl") + ":1");
  // The same cell twice with the same numbers (another timing) is one cell.
  r = nlohmann::json::parse(lines[1]);
  r["eval_seconds"] = 99.0;
  write_lines(tmp.file("same.jsonl"), {r.dump()});
  EXPECT_EQ(merge_sweep_shards({s0, s1, tmp.file("same.jsonl")}).size(), f.cells.size() + 1);
  // Foreign records: another model, a record written by no sweep, a line that is no record.
  r = nlohmann::json::parse(lines[1]);
  r["model_sha256"] = "feed";
  auto untagged = nlohmann::json::parse(lines[1]);
  untagged.erase("sweep");
  write_lines(tmp.file("foreign.jsonl"), {r.dump(), untagged.dump(), "{\"torn\": "});
  try {
    merge_sweep_shards({s0, s1, tmp.file("foreign.jsonl")});
    ADD_FAILURE() << "merged foreign records";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("foreign record at " + tmp.file("foreign.jsonl") + ":1 (" +
                     f.cells[static_cast<size_t>(r["sweep"]["index"].get<int64_t>())].label() +
                     "): its model_sha256 is 'feed', not '0123'"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("foreign record at " + tmp.file("foreign.jsonl") + ":2"), std::string::npos)
        << m;
    EXPECT_NE(m.find("foreign line at " + tmp.file("foreign.jsonl") + ":3"), std::string::npos)
        << m;
  }
  // Another grid (a 3-shard sweep's records beside a 2-shard one's).
  const std::string t0 = f.run_shard(tmp, 0, 3);
  EXPECT_THROW_MESSAGE(merge_sweep_shards({s0, s1, t0}), std::runtime_error, "another grid");
  EXPECT_THROW_MESSAGE(merge_sweep_shards({tmp.file("nothing.jsonl")}), std::runtime_error,
                       "nothing.jsonl: cannot open it");
}

TEST(Sweep, AShardRefusesAnotherShardsFile) {
  Fixture f;
  TempDir tmp;
  const std::string s0 = f.run_shard(tmp, 0, 2);
  const auto before = lines_of(s0);
  SweepOptions o;
  o.shard = parse_shard("1/2");
  o.out = s0;  // two array tasks given one file
  EXPECT_THROW_MESSAGE(run_sweep(f.ctx, f.cells, o), std::runtime_error,
                       "of shard 0/2, and this is shard 1/2: each shard writes its own results "
                       "file (put {shard} in --out");
  EXPECT_EQ(lines_of(s0), before);  // left unchanged
  // The same shard again resumes: nothing left to run.
  o.shard = parse_shard("0/2");
  int ran = 0;
  o.log = [&](const std::string&) { ++ran; };
  run_sweep(f.ctx, f.cells, o);
  EXPECT_EQ(ran, 0);
}
