#include "test_utils.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/int8_engine.h"
#include "lm/evaluate.h"
#include "quant/quantize_model.h"
#include "quant/quantized_io.h"
#include "util/runtime.h"

namespace fs = std::filesystem;

namespace lmquant::test {

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "lmquant_test_XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string real_data_dir() {
  const char* env = std::getenv("LMQUANT_DATA");
  if (!env || !*env) return "";
  if (!fs::exists(fs::path(env) / "wikitext-2" / "train.txt")) return "";
  return env;
}

std::string reference_model_dir(const std::string& name) {
  const std::string data = real_data_dir();
  if (data.empty()) return "";
  const auto dir = fs::path(data).parent_path() / "models" / name;
  return fs::exists(dir / "model.pt") ? dir.string() : "";
}

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  auto d = (a.to(torch::kDouble) - b.to(torch::kDouble)).abs();
  auto s = b.to(torch::kDouble).abs().clamp_min(1e-12);
  return (d / s).max().item<double>();
}

namespace {
// Runs a shell command line with stdout and stderr captured and stdin empty.
CliResult run_captured(const std::string& command) {
  TempDir tmp;
  const std::string cmd =
      command + " >" + tmp.file("out") + " 2>" + tmp.file("err") + " </dev/null";
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(tmp.file("out"));
  r.err = slurp(tmp.file("err"));
  return r;
}
}  // namespace

CliResult run_cli(const std::string& args) {
  return run_captured(std::string(LMQUANT_CLI_PATH) + " " + args);
}

CliResult run_shell(const std::string& script) {
  TempDir tmp;
  write_text(tmp.file("script.sh"), script);
  return run_captured("LMQUANT=" + std::string(LMQUANT_CLI_PATH) + " bash " +
                      tmp.file("script.sh"));
}

std::string tiny_corpus_dir() { return std::string(LMQUANT_TEST_DATA_DIR) + "/tiny"; }

lmquant::LstmLm tiny_lstm(int64_t vocab, uint64_t seed, bool tied) {
  torch::manual_seed(seed);
  lmquant::LstmLmConfig c;
  c.vocab = vocab;
  c.emb = c.hidden = 16;
  c.tied = tied;
  return lmquant::LstmLm(c);
}

lmquant::LstmLmConfig stack_config(bool tied) {
  lmquant::LstmLmConfig c;
  c.vocab = 17;
  c.emb = tied ? 5 : 6;
  c.layers = 3;
  c.layer_hidden = {8, 9, 5};
  c.hidden = 9;
  c.layer_proj = {0, 4, 0};
  c.dropout = 0;
  c.tied = tied;
  return c;
}

}  // namespace lmquant::test

namespace {
// Debian's LibTorch starts with one thread; tests run serially and use every core.
class ThreadsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { lmquant::configure_threads(0); }
};
[[maybe_unused]] auto* const kThreadsEnv =
    ::testing::AddGlobalTestEnvironment(new ThreadsEnvironment);
}  // namespace

namespace lmquant::test {

EnginePerplexities simulated_and_int8_engine(const lmquant::QuantizedModel& qm,
                                             const std::string& packed,
                                             const torch::Tensor& tokens) {
  lmquant::EvalOptions o;
  o.batch = 4, o.bptt = 6;
  EnginePerplexities r;
  lmquant::LstmLm sim = qm.folded;
  r.simulated = lmquant::evaluate(sim, tokens, o).perplexity;
  lmquant::QuantizedFile lean =
      lmquant::read_quantized(packed, torch::kCPU, /*float_matrices=*/false);
  o.engine = lmquant::int8_engine(lean);
  r.int8_engine = lmquant::evaluate(lean.loaded.model, tokens, o).perplexity;
  return r;
}

}  // namespace lmquant::test
