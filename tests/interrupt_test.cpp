// Ctrl-C (SIGINT) stops training, sweeps and downloads cleanly: exit 130, a message saying what
// was kept and how to resume, and no partial file.
#include <filesystem>
#include <fstream>
#include <random>

#include "corpus/download.h"
#include "lm/checkpoint.h"
#include "lm/evaluate.h"
#include "test_utils.h"
#include "util/atomic_file.h"
#include "util/interrupt.h"

using namespace lmquant;
using lmquant::test::run_shell;
using lmquant::test::write_text;
using lmquant::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A synthetic corpus big enough that training and evaluation take seconds.
std::string big_corpus(const TempDir& tmp) {
  const std::string dir = tmp.file("big");
  fs::create_directories(dir);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> word(0, 499), len(5, 20);
  for (const auto& [name, lines] : {std::pair{"train.txt", 6000}, {"valid.txt", 300}, {"test.txt", 20000}}) {
    std::ofstream f(dir + "/" + name);
    for (int l = 0; l < lines; ++l) {
      for (int i = len(rng); i > 0; --i) f << " w" << word(rng);
      f << " \n";
    }
  }
  return dir;
}

// Starts `command` in the background, sends SIGINT once `file` is newer than the start (the
// process is then past its startup and has written something), waits, prints "rc=N". Polling,
// not a fixed delay: a slow machine or a sanitizer build must not send the signal before the
// handler is installed (a background job of a script starts with SIGINT ignored).
std::string interrupt_when(const std::string& command, const std::string& file) {
  return "touch " + file + ".start\n\"$LMQUANT\" " + command +
         " & pid=$!\nfor i in $(seq 3000); do [ " + file + " -nt " + file +
         ".start ] && break; sleep 0.1; done\nkill -INT $pid\nwait $pid\necho rc=$?\nrm -f " +
         file + ".start\n";
}

}  // namespace

TEST(Interrupt, TrainingStopsAndResumes) {
  TempDir tmp;
  const std::string corpus = " --corpus " + big_corpus(tmp);
  const std::string train = "train -q --emb 32 --hidden 32 --epochs 20 --log-interval 5 --out " +
                            tmp.file("m.lmq") + corpus;
  auto r = run_shell(interrupt_when(train, tmp.file("m.lmq.last")));
  EXPECT_NE(r.out.find("rc=130"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("interrupted during"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("run the same command with --resume"), std::string::npos) << r.err;
  ASSERT_TRUE(fs::exists(tmp.file("m.lmq.last"))) << r.err;
  for (const auto& e : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  // --resume picks up from the kept state (stopped again once it has written a new state): its
  // log names the epoch and batch the kept state records, so a restart from scratch would fail.
  const auto st = read_checkpoint(tmp.file("m.lmq.last")).meta.at("train_state");
  const int64_t epoch = st.at("epoch"), batch = st.at("batch");
  ASSERT_GT(epoch * 100000 + batch, 100000) << "the kept state is past the start";
  std::string resumed = train + " --resume";
  resumed.replace(resumed.find("train -q"), 8, "train");  // not quiet: it logs where it resumes
  r = run_shell(interrupt_when(resumed, tmp.file("m.lmq.last")));
  EXPECT_NE(r.out.find("rc=130"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("resuming " + tmp.file("m.lmq.last") + " at epoch " +
                       std::to_string(epoch) + ", batch " + std::to_string(batch)),
            std::string::npos)
      << r.err;
}

TEST(Interrupt, SweepKeepsFinishedCells) {
  TempDir tmp;
  const std::string corpus = " --corpus " + big_corpus(tmp);
  ASSERT_EQ(run_shell("\"$LMQUANT\" train -q --emb 32 --hidden 32 --epochs 1 --max-batches 5 --out " +
                      tmp.file("m.lmq") + corpus)
                .code,
            0);
  const std::string sweep = "sweep -q --bits 2,3,4,5,6,7,8 --methods clip --clips max,mse "
                            "--granularity tensor,row --model " + tmp.file("m.lmq") +
                            " --out " + tmp.file("s.jsonl") + corpus;
  // SIGINT once the first cell is in --out (the file is created empty at the start).
  auto r = run_shell("\"$LMQUANT\" " + sweep + " & pid=$!\nfor i in $(seq 3000); do [ -s " +
                     tmp.file("s.jsonl") + " ] && break; sleep 0.1; done\nkill -INT $pid\n"
                     "wait $pid\necho rc=$?\n");
  EXPECT_NE(r.out.find("rc=130"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("finished cells are kept in " + tmp.file("s.jsonl")), std::string::npos)
      << r.err;
  // Every kept line is a whole cell.
  std::ifstream in(tmp.file("s.jsonl"));
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    EXPECT_NO_THROW((void)nlohmann::json::parse(line).at("perplexity")) << line;
  }
  EXPECT_GE(lines, 1);
  EXPECT_LT(lines, 29);  // the float record and fewer than all 28 cells
  for (const auto& e : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(Interrupt, DownloadLeavesNoFile) {
  TempDir tmp;
  write_text(tmp.file("src.bin"), std::string(8 << 20, 'x'));
  set_interrupted(false);
  // The signal handler only sets the flag; set it as the first progress report arrives.
  Progress progress = [](const ProgressEvent&) { set_interrupted(true); };
  EXPECT_THROW_MESSAGE(download_file("file://" + tmp.file("src.bin"), tmp.file("dest.bin"), progress),
                       Interrupted, "nothing was written to the cache");
  set_interrupted(false);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);  // src.bin only: no dest.bin, no .part file
  EXPECT_FALSE(fs::exists(tmp.file("dest.bin")));
}

TEST(Interrupt, EvaluationPollsTheFlag) {
  LstmLmConfig c;
  c.vocab = 20;
  c.emb = c.hidden = 4;
  LstmLm m(c);
  const auto stream = torch::randint(0, 20, {500}, torch::kInt64);
  set_interrupted(true);
  EXPECT_THROW_MESSAGE(evaluate(m, stream), Interrupted, "interrupted during evaluation");
  set_interrupted(false);
  EXPECT_NO_THROW(evaluate(m, stream));
}
