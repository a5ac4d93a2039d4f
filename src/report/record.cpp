#include "report/record.h"

#include <cmath>
#include <set>
#include <stdexcept>

#include "lm/matrices.h"
#include "util/sha256.h"

#ifndef LMQUANT_VERSION
#define LMQUANT_VERSION "unknown"
#endif

namespace lmquant {

std::string lmquant_version() { return LMQUANT_VERSION; }

double Provenance::tokens_per_word() const {
  return split_words > 0 ? static_cast<double>(split_tokens) / static_cast<double>(split_words)
                         : 1.0;
}

std::string Provenance::value_of(const std::string& f) const {
  if (f == "model_sha256") return model_sha256;
  if (f == "corpus") return corpus;
  if (f == "split") return split;
  if (f == "split_sha256") return split_sha256;
  if (f == "first_tokens") return std::to_string(first_tokens);
  if (f == "tokenizer") return tokenizer;
  if (f == "vocab_sha256") return vocab_sha256;
  if (f == "version") return version;
  return "";
}

std::string Provenance::differs_from(const Provenance& o, bool same_stream) const {
  std::vector<const char*> fields = {"model_sha256", "corpus", "tokenizer", "vocab_sha256",
                                     "version"};
  // Records of different streams (a report's selection and test rows) still share the model,
  // corpus, tokenizer and version; the same stream also means the same split file and slice.
  if (same_stream) fields.insert(fields.begin() + 2, {"split", "split_sha256", "first_tokens"});
  for (const char* f : fields)
    if (value_of(f) != o.value_of(f)) return f;
  return "";
}

nlohmann::json Provenance::to_json() const {
  nlohmann::json j = {{"model", model},
                      {"model_sha256", model_sha256},
                      {"model_desc", model_desc},
                      {"corpus", corpus},
                      {"split", split},
                      {"split_sha256", split_sha256},
                      {"first_tokens", first_tokens},
                      {"tokenizer", tokenizer},
                      {"split_tokens", split_tokens},
                      {"split_words", split_words},
                      {"lmquant_version", version}};
  if (!vocab_sha256.empty()) j["vocab_sha256"] = vocab_sha256;
  return j;
}

Provenance Provenance::from_json(const nlohmann::json& j) {
  Provenance p;
  p.model = j.value("model", "");
  p.model_sha256 = j.value("model_sha256", "");
  p.model_desc = j.value("model_desc", "");
  p.corpus = j.value("corpus", "");
  p.split = j.value("split", "");
  p.split_sha256 = j.value("split_sha256", "");
  p.first_tokens = j.value("first_tokens", int64_t{0});
  p.tokenizer = j.value("tokenizer", "word");
  p.vocab_sha256 = j.value("vocab_sha256", "");
  p.split_tokens = j.value("split_tokens", int64_t{0});
  p.split_words = j.value("split_words", int64_t{0});
  p.version = j.value("lmquant_version", "");
  return p;
}

torch::Tensor stream_of(const Corpus& corpus, Split split, int64_t first_tokens) {
  const auto& s = corpus.split(split);
  if (first_tokens < 0) throw std::invalid_argument("first_tokens must be >= 0");
  return first_tokens > 0 && first_tokens < s.numel() ? s.narrow(0, 0, first_tokens) : s;
}

Provenance provenance_of(const LoadedModel& model, const Corpus& corpus, Split split,
                         int64_t first_tokens) {
  Provenance p;
  p.model = model.path;
  p.model_sha256 = model.file_sha256;
  p.model_desc = model.model->config().describe();
  p.corpus = corpus.location.name;
  p.split = to_string(split);
  const std::string file = corpus.location.dir + "/" + p.split + ".txt";
  try {
    p.split_sha256 = sha256_file(file);
  } catch (const std::exception&) {
    p.split_sha256 = "";  // an in-memory corpus (tests): no file to hash
  }
  const int64_t all = corpus.tokens(split);
  p.first_tokens = first_tokens > 0 && first_tokens < all ? first_tokens : 0;
  p.tokenizer = corpus.tokenizer;
  if (!corpus.vocab_path.empty()) p.vocab_sha256 = corpus.vocab.hash();
  p.split_tokens = p.first_tokens > 0 ? p.first_tokens : all;
  // Words of a slice, in proportion (word perplexity of a slice is an estimate; whole splits
  // are exact).
  p.split_words = p.first_tokens > 0
                      ? static_cast<int64_t>(std::llround(static_cast<double>(p.first_tokens) /
                                                          corpus.tokens_per_word(split)))
                      : corpus.words(split);
  p.version = lmquant_version();
  return p;
}

nlohmann::json SweepCell::to_json() const {
  nlohmann::json j = {{"grid_sha256", grid_sha256},
                      {"index", index},
                      {"cells", cells},
                      {"shard", shard},
                      {"shards", shards}};
  if (!grid.empty()) j["grid"] = grid;
  return j;
}

SweepCell SweepCell::from_json(const nlohmann::json& j) {
  SweepCell c;
  c.grid_sha256 = j.at("grid_sha256").get<std::string>();
  c.index = j.at("index").get<int64_t>();
  c.cells = j.at("cells").get<int64_t>();
  c.shard = j.at("shard").get<int64_t>();
  c.shards = j.at("shards").get<int64_t>();
  c.grid = j.value("grid", std::vector<std::string>{});
  return c;
}

double Record::word_perplexity() const {
  return perplexity_of_loss(eval.loss * source.tokens_per_word());
}

double Record::bits_per_weight() const {
  return params_before ? size_bits / static_cast<double>(params_before) : 0.0;
}

double Record::params_overhead_pct() const {
  return params_before ? 100.0 * static_cast<double>(params_after - params_before) /
                             static_cast<double>(params_before)
                       : 0.0;
}

double Record::macs_overhead_pct() const {
  return macs_before ? 100.0 * static_cast<double>(macs_after - macs_before) /
                           static_cast<double>(macs_before)
                     : 0.0;
}

nlohmann::json Record::to_json() const {
  nlohmann::json j = source.to_json();
  j["label"] = label();
  j["config"] = config.to_json();
  if (!(asked == config)) j["asked_config"] = asked.to_json();
  j["tokens"] = eval.tokens;
  j["loss"] = eval.loss;
  j["perplexity"] = eval.perplexity;
  j["word_perplexity"] = word_perplexity();
  j["eval_seconds"] = eval.seconds;
  j["float_perplexity"] = float_perplexity;
  const nlohmann::json interval = vs_float.to_json();
  for (const auto& [k, v] : interval.items()) j[k] = v;
  if (has_divergence()) {
    j["kl_to_float"] = kl_to_float.to_json();
    j["top1_agreement"] = top1_agreement.to_json();
  }
  if (!repeat_perplexities.empty()) {
    const Spread s = spread();
    j["repeat_perplexities"] = repeat_perplexities;
    j["repeat_mean"] = s.mean;
    j["repeat_std"] = s.std;
  }
  j["params_before"] = params_before;
  j["params_after"] = params_after;
  j["macs_before"] = macs_before;
  j["macs_after"] = macs_after;
  j["params_overhead_percent"] = params_overhead_pct();
  j["macs_overhead_percent"] = macs_overhead_pct();
  j["size_bits"] = size_bits;
  j["float_size_bits"] = float_size_bits;
  j["quantize_seconds"] = quantize_seconds;
  j["matrices"] = nlohmann::json::array();
  for (const auto& m : matrices) j["matrices"].push_back(m.to_json());
  if (!bias_refit_kl.empty()) j["bias_refit_kl"] = bias_refit_kl;
  j["chunk_nll"] = eval.chunk_nll;
  j["chunk_tokens"] = eval.chunk_tokens;
  if (has_divergence()) {
    j["chunk_kl"] = eval.chunk_kl;
    j["chunk_top1"] = eval.chunk_top1;
  }
  if (!sweep.empty()) j["sweep"] = sweep.to_json();
  return j;
}

Record Record::from_json(const nlohmann::json& j) {
  // Every field a record's JSON holds (to_json's, and what commands add to it); anything else is
  // an error naming it, and so is a number that is not finite.
  static const std::set<std::string> kFields = {
      "model", "model_sha256", "model_desc", "corpus", "split", "split_sha256", "first_tokens",
      "tokenizer", "vocab_sha256", "split_tokens", "split_words", "lmquant_version", "label",
      "config", "asked_config", "tokens", "loss", "perplexity", "word_perplexity", "eval_seconds",
      "float_perplexity", "delta_pct", "ci_low", "ci_high", "resamples", "significant",
      "kl_to_float", "top1_agreement", "repeat_perplexities", "repeat_mean", "repeat_std",
      "params_before", "params_after", "macs_before", "macs_after", "params_overhead_percent",
      "macs_overhead_percent", "size_bits", "float_size_bits", "quantize_seconds", "matrices",
      "chunk_nll", "chunk_tokens", "chunk_kl", "chunk_top1", "sweep", "bias_refit_kl",
      // added by `quantize --json`, and by Python's evaluate
      "joint_allocation", "expanded_perplexity", "expanded_eval_seconds",
      "float_transformed_perplexity", "engine"};
  if (!j.is_object()) throw std::invalid_argument("a record is a JSON object");
  for (const auto& [key, value] : j.items())
    if (!kFields.count(key)) throw std::invalid_argument("unknown record field '" + key + "'");
  for (const char* key : {"loss", "perplexity", "tokens"})
    if (!j.contains(key) || !j.at(key).is_number())
      throw std::invalid_argument(std::string("record field '") + key +
                                  "' is missing or not a number (a NaN is written as null)");
  Record r;
  r.source = Provenance::from_json(j);
  r.config = QuantConfig::from_json(j.at("config"));
  r.asked = j.contains("asked_config") ? QuantConfig::from_json(j.at("asked_config")) : r.config;
  r.eval.tokens = j.at("tokens").get<int64_t>();
  r.eval.loss = j.at("loss").get<double>();
  r.eval.perplexity = j.at("perplexity").get<double>();
  r.eval.total_nll = r.eval.loss * static_cast<double>(r.eval.tokens);
  r.eval.seconds = j.value("eval_seconds", 0.0);
  r.eval.tokens_per_s =
      r.eval.seconds > 0 ? static_cast<double>(r.eval.tokens) / r.eval.seconds : 0;
  r.float_perplexity = j.value("float_perplexity", 0.0);
  r.vs_float = PairedInterval::from_json(j);
  r.repeat_perplexities = j.value("repeat_perplexities", std::vector<double>{});
  r.params_before = j.value("params_before", int64_t{0});
  r.params_after = j.value("params_after", int64_t{0});
  r.macs_before = j.value("macs_before", int64_t{0});
  r.macs_after = j.value("macs_after", int64_t{0});
  r.size_bits = j.value("size_bits", 0.0);
  r.float_size_bits = j.value("float_size_bits", 0.0);
  r.quantize_seconds = j.value("quantize_seconds", 0.0);
  for (const auto& m : j.value("matrices", nlohmann::json::array()))
    r.matrices.push_back(MatrixReport::from_json(m));
  r.bias_refit_kl = j.value("bias_refit_kl", std::vector<double>{});
  r.eval.chunk_nll = j.value("chunk_nll", std::vector<double>{});
  r.eval.chunk_tokens = j.value("chunk_tokens", std::vector<int64_t>{});
  r.eval.chunk_kl = j.value("chunk_kl", std::vector<double>{});
  r.eval.chunk_top1 = j.value("chunk_top1", std::vector<int64_t>{});
  for (double k : r.eval.chunk_kl) r.eval.total_kl += k;
  for (int64_t t : r.eval.chunk_top1) r.eval.top1_agree += t;
  if (j.contains("kl_to_float")) r.kl_to_float = MeanInterval::from_json(j.at("kl_to_float"));
  if (j.contains("top1_agreement"))
    r.top1_agreement = MeanInterval::from_json(j.at("top1_agreement"));
  if (j.contains("sweep")) r.sweep = SweepCell::from_json(j.at("sweep"));
  return r;
}

Record make_record(const Provenance& source, const QuantConfig& config, const QuantizedModel* qm,
                   const LstmLmImpl& float_model, const EvalResult& eval,
                   const EvalResult& float_eval) {
  Record r;
  r.source = source;
  r.config = qm ? qm->config : config;
  r.asked = config;
  r.eval = eval;
  r.float_perplexity = float_eval.perplexity;
  if (qm) {
    r.vs_float = paired_bootstrap(eval.chunk_nll, float_eval.chunk_nll, eval.chunk_tokens);
    if (eval.has_divergence()) {
      r.kl_to_float = mean_bootstrap(eval.chunk_kl, eval.chunk_tokens);
      std::vector<double> top1(eval.chunk_top1.begin(), eval.chunk_top1.end());
      r.top1_agreement = mean_bootstrap(top1, eval.chunk_tokens);
    }
    r.params_before = qm->params_before;
    r.params_after = qm->params_after;
    r.macs_before = qm->macs_before;
    r.macs_after = qm->macs_after;
    r.size_bits = qm->size_bits;
    r.float_size_bits = qm->float_size_bits;
    r.quantize_seconds = qm->seconds;
    r.matrices = qm->matrices;
    r.bias_refit_kl = qm->bias_refit_kl;
  } else {
    r.config = QuantConfig{};
    r.config.method = Method::kFloat;
    r.asked = r.config;
    r.params_before = r.params_after = stored_parameter_count(float_model);
    r.macs_before = r.macs_after = macs_per_token(float_model);
    r.size_bits = r.float_size_bits = 32.0 * static_cast<double>(r.params_before);
  }
  return r;
}

void check_same_provenance(const std::vector<Record>& records, bool same_stream) {
  for (const auto& r : records) {
    const std::string f = r.source.differs_from(records.front().source, same_stream);
    if (!f.empty())
      throw std::runtime_error("records of different provenance cannot be merged: " + f + " is '" +
                               records.front().source.value_of(f) + "' for " +
                               records.front().label() + " but '" + r.source.value_of(f) +
                               "' for " + r.label());
  }
}

}  // namespace lmquant
