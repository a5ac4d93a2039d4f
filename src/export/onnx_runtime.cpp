#include "export/onnx_runtime.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "util/atomic_file.h"

namespace lmquant {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

bool on_path(const std::string& exe) {
  return std::system(("command -v " + exe + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace

OnnxRuntimeResult onnx_runtime_eval(const std::string& onnx_path, const torch::Tensor& ids,
                                    int64_t batch, int64_t bptt, int threads) {
  namespace fs = std::filesystem;
  OnnxRuntimeResult r;
  const std::string source = LMQUANT_SOURCE_DIR;
  const std::string script = env_or("LMQUANT_ORT_EVAL", source + "/tools/onnx/ort_eval.js");
  const std::string node_path = env_or("LMQUANT_NODE_PATH", source + "/.cache/node/node_modules");
  if (!on_path("node")) {
    r.why_not = "Node.js not installed";
    return r;
  }
  if (!fs::exists(script)) {
    r.why_not = script + " not found (set LMQUANT_ORT_EVAL)";
    return r;
  }
  if (!fs::exists(node_path + "/onnxruntime-node/package.json")) {
    r.why_not = "onnxruntime-node not in " + node_path + " (tools/setup.sh installs it)";
    return r;
  }
  char dir_template[] = "/tmp/lmquant_ort_XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (!dir) {
    r.why_not = "no temporary folder";
    return r;
  }
  const std::string ids_path = std::string(dir) + "/ids.bin";
  const torch::Tensor l = ids.to(torch::kLong).contiguous();
  write_file_atomic(ids_path, std::string(static_cast<const char*>(l.data_ptr()), l.nbytes()));
  const std::string cmd = "NODE_PATH='" + node_path + "' node '" + script + "' '" + onnx_path +
                          "' '" + ids_path + "' --batch " + std::to_string(batch) + " --bptt " +
                          std::to_string(bptt) + " --threads " + std::to_string(threads) + " 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = pclose(p);
    if (status != 0) r.why_not = "ort_eval.js failed: " + out.substr(0, 300);
  } else {
    r.why_not = "could not start node";
  }
  fs::remove_all(dir);
  if (!r.why_not.empty()) return r;
  try {
    const auto j = nlohmann::json::parse(out);
    r.perplexity = j.at("perplexity").get<double>();
    r.loss = j.at("loss").get<double>();
    r.seconds = j.at("seconds").get<double>();
    r.tokens_per_s = j.at("tokens_per_s").get<double>();
    r.tokens = j.at("tokens").get<int64_t>();
    r.version = j.value("onnxruntime", "");
    r.ran = true;
  } catch (const std::exception& e) {
    r.why_not = "ort_eval.js printed no result: " + out.substr(0, 300);
  }
  return r;
}

}  // namespace lmquant
