#include "report/report.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace lmquant {

std::string Record::label() const {
  if (method == "float") return "float";
  char r[32];
  std::snprintf(r, sizeof r, "%g", expand_ratio);
  std::string s = method == "ocs" ? std::string("ocs r=") + r + " " + clip : "clip " + clip;
  if (grid_aware) s += " grid-aware";
  return s;
}

double Record::word_perplexity() const { return std::pow(perplexity, tokens_per_word); }
double Record::float_word_perplexity() const { return std::pow(float_perplexity, tokens_per_word); }

nlohmann::json Record::to_json() const {
  return {{"model", model},
          {"model_sha256", model_sha256},
          {"model_desc", model_desc},
          {"corpus", corpus},
          {"split", split},
          {"tokens", tokens},
          {"method", method},
          {"clip", clip},
          {"bits", bits},
          {"granularity", granularity},
          {"expand_ratio", expand_ratio},
          {"grid_aware", grid_aware},
          {"tokenizer", tokenizer},
          {"tokens_per_word", tokens_per_word},
          {"perplexity", perplexity},
          {"float_perplexity", float_perplexity},
          {"word_perplexity", word_perplexity()},
          {"float_word_perplexity", float_word_perplexity()},
          {"delta_percent", delta_percent},
          {"params_overhead_percent", params_overhead_percent},
          {"macs_overhead_percent", macs_overhead_percent},
          {"size_bits", size_bits},
          {"seconds", seconds},
          {"matrices", matrices}};
}

Record make_record(const QuantConfig* config, const QuantizedModel* qm, double perplexity,
                   double float_perplexity, int64_t tokens, double seconds) {
  Record r;
  r.tokens = tokens;
  r.perplexity = perplexity;
  r.float_perplexity = float_perplexity;
  r.delta_percent = 100 * (perplexity / float_perplexity - 1);
  r.seconds = seconds;
  if (!config || !qm) return r;
  r.method = to_string(config->method);
  r.clip = config->clip.to_string();
  r.bits = config->bits;
  r.granularity = to_string(config->granularity);
  r.expand_ratio = config->expand_ratio;
  r.grid_aware = config->grid_aware;
  r.params_overhead_percent = 100.0 * (qm->params_after - qm->params_before) / qm->params_before;
  r.macs_overhead_percent = 100.0 * (qm->macs_after - qm->macs_before) / qm->macs_before;
  r.size_bits = qm->size_bits;
  for (const auto& m : qm->matrices) r.matrices.push_back(m.to_json());
  return r;
}

Record Record::from_json(const nlohmann::json& j) {
  if (j.contains("config") && !j.contains("method")) {  // sweep lines: {config, ...results}
    nlohmann::json flat = j;
    for (const auto& [k, v] : j["config"].items()) flat[k] = v;
    flat.erase("config");
    return from_json(flat);
  }
  Record r;
  r.model = j.value("model", "");
  r.model_sha256 = j.value("model_sha256", "");
  r.model_desc = j.value("model_desc", "");
  r.corpus = j.value("corpus", "");
  r.split = j.value("split", "");
  r.tokens = j.value("tokens", int64_t{0});
  r.method = j.value("method", "float");
  r.clip = j.value("clip", "");
  r.bits = j.value("bits", 32);
  r.granularity = j.value("granularity", "");
  r.expand_ratio = j.value("expand_ratio", 0.0);
  r.grid_aware = j.value("grid_aware", false);
  r.tokenizer = j.value("tokenizer", "word");
  r.tokens_per_word = j.value("tokens_per_word", 1.0);
  r.perplexity = j.value("perplexity", 0.0);
  r.float_perplexity = j.value("float_perplexity", 0.0);
  r.delta_percent = j.value("delta_percent", 0.0);
  r.params_overhead_percent = j.value("params_overhead_percent", 0.0);
  r.macs_overhead_percent = j.value("macs_overhead_percent", 0.0);
  r.size_bits = j.value("size_bits", 0.0);
  r.seconds = j.value("seconds", 0.0);
  r.matrices = j.value("matrices", nlohmann::json::array());
  return r;
}

std::string markdown_table(const std::vector<Record>& records) {
  std::ostringstream o;
  // Subword models get a per-word column: only it compares with a word-level model.
  bool per_word = false;
  for (const auto& r : records) per_word |= r.tokenizer != "word";
  o << "| method | clip | r | bits | granularity | perplexity" << (per_word ? " (per token) | per word" : "")
    << " | Δ vs float | overhead (MACs) | size |\n"
    << "|---|---|---|---|---|---|---|---|---|" << (per_word ? "---|" : "") << "\n";
  char buf[512];
  for (const auto& r : records) {
    char word_col[64] = "";
    if (per_word) std::snprintf(word_col, sizeof word_col, " %.2f |", r.word_perplexity());
    std::snprintf(buf, sizeof buf, "| %s%s | %s | %s | %s | %s | %.2f |%s %+.2f%% | %.2f%% | %.2f MiB |\n",
                  r.method.c_str(), r.grid_aware ? " (grid-aware)" : "",
                  r.clip.empty() ? "-" : r.clip.c_str(),
                  r.method == "ocs" ? std::to_string(r.expand_ratio).substr(0, 4).c_str() : "-",
                  r.method == "float" ? "32 (float)" : std::to_string(r.bits).c_str(),
                  r.granularity.empty() ? "-" : r.granularity.c_str(), r.perplexity, word_col,
                  r.delta_percent, r.macs_overhead_percent, r.size_bits / 8 / 1048576);
    o << buf;
  }
  return o.str();
}

std::string csv(const std::vector<Record>& records) {
  std::ostringstream o;
  o << "model,corpus,split,tokens,method,clip,bits,granularity,expand_ratio,grid_aware,perplexity,"
       "float_perplexity,delta_percent,params_overhead_percent,macs_overhead_percent,size_bits,"
       "seconds,tokenizer,tokens_per_word,word_perplexity\n";
  for (const auto& r : records) {
    o << '"' << r.model << "\"," << r.corpus << ',' << r.split << ',' << r.tokens << ','
      << r.method << ",\"" << r.clip << "\"," << r.bits << ',' << r.granularity << ','
      << r.expand_ratio << ',' << (r.grid_aware ? 1 : 0) << ',' << r.perplexity << ','
      << r.float_perplexity << ',' << r.delta_percent << ',' << r.params_overhead_percent << ','
      << r.macs_overhead_percent << ',' << r.size_bits << ',' << r.seconds << ',' << r.tokenizer
      << ',' << r.tokens_per_word << ',' << r.word_perplexity() << '\n';
  }
  return o.str();
}

nlohmann::json records_json(const std::vector<Record>& records) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : records) a.push_back(r.to_json());
  return a;
}

const Record* best_quantized(const std::vector<Record>& records) {
  const Record* best = nullptr;
  for (const auto& r : records)
    if (r.method != "float" && (!best || r.perplexity < best->perplexity)) best = &r;
  return best;
}

void write_report_dir(const std::string& dir, const std::function<void(const std::string&)>& fill) {
  const fs::path target = fs::absolute(dir);
  const fs::path parent = target.parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  const fs::path stage = parent / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()));
  const fs::path old = parent / ("." + target.filename().string() + ".old." + std::to_string(::getpid()));
  fs::remove_all(stage, ec);
  if (!fs::create_directory(stage, ec) || ec)
    throw std::runtime_error("cannot write the report directory " + dir + ": " +
                             (ec ? ec.message() : std::string("cannot create ") + stage.string()) +
                             " (choose a writable --report-dir)");
  try {
    fill(stage.string());
    if (fs::exists(target)) fs::rename(target, old);
    fs::rename(stage, target);
    fs::remove_all(old, ec);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(stage, ec);
    throw std::runtime_error("cannot write the report directory " + dir + ": " + e.what());
  } catch (...) {
    fs::remove_all(stage, ec);
    throw;
  }
}

}  // namespace lmquant
