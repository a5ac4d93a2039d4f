// The checkpoint format (lm/checkpoint.h) read strictly: format 1 files of the previous version
// still load and evaluate as they did; every header byte is covered by the header's SHA-256;
// header edits that pass the checksum (a rewritten hash) are refused by the strict reader, as
// are layouts a quantized file's configuration does not give (quant/quantized_io.h); records
// and the corpus registry are read strictly too; no NaN leaves an evaluation or a score.
#include "lm/checkpoint.h"

#include <cmath>
#include <cstring>
#include <fstream>

#include "corpus/corpus.h"
#include "corpus/corpus_store.h"
#include "corpus/registry.h"
#include "engine/int8_engine.h"
#include "lm/evaluate.h"
#include "lm/model_io.h"
#include "lm/score.h"
#include "quant/quantized_io.h"
#include "report/report.h"
#include "test_utils.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

using namespace lmquant;
using lmquant::test::TempDir;

namespace {

std::string format1(const std::string& name) {
  return std::string(LMQUANT_TEST_DATA_DIR) + "/format1/" + name;
}

Corpus tiny_corpus() {
  return load_word_corpus(locate_corpus(lmquant::test::tiny_corpus_dir(), {}));
}

double test_perplexity(LstmLm model, const Corpus& c, const EngineHooks& hooks = {}) {
  EvalOptions o;
  o.engine = hooks;
  return evaluate(model, c.test, o).perplexity;
}

void write_bytes(const std::string& path, const std::string& b) {
  std::ofstream(path, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
}

// A format-2 file with its header edited by `edit` and the header's length and SHA-256
// rewritten: what reaches the strict reader past the checksum.
std::string edited(const std::string& bytes, const std::function<void(nlohmann::json&)>& edit) {
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i)
    len |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  auto h = nlohmann::json::parse(bytes.substr(16, len));
  edit(h);
  const std::string text = h.dump();
  std::string head = bytes.substr(0, 8);
  for (int i = 0; i < 8; ++i) head.push_back(static_cast<char>(text.size() >> (8 * i)));
  head += text;
  return head + sha256_raw(head) + bytes.substr(16 + len + 32);
}

}  // namespace

TEST(Checkpoint, FormatOneFilesOfTheLastVersionStillLoadAndEvaluateAsTheyDid) {
  // The perplexities lmquant 0.3.0 printed for these files (tests/data/format1/README.md).
  const Corpus c = tiny_corpus();
  const LoadedModel m = load_model(format1("tiny.lmq"));
  EXPECT_NEAR(test_perplexity(m.model, c), 75.05792174479875, 1e-6);
  for (const char* f : {"tiny.4b.lmq", "tiny.4b.codes.lmq"})
    EXPECT_NEAR(test_perplexity(load_any_model(format1(f)).model, c), 75.01932013433782, 1e-6) << f;
  EXPECT_NEAR(test_perplexity(load_any_model(format1("tiny.rows.lmq")).model, c), 75.14328914127353,
              1e-6);
  QuantizedFile f = read_quantized(format1("tiny.4b.lmq"), torch::kCPU, /*float_matrices=*/false);
  const EngineHooks hooks = int8_engine(f);
  // The int8 engine's products run on oneDNN or lmquant's kernels by CPU: exact integer sums,
  // the float parts within a CPU's rounding.
  EXPECT_NEAR(test_perplexity(f.loaded.model, c, hooks), 75.0174454090263, 1e-4);
  // Saved again, the same model in format 2.
  TempDir tmp;
  save_model(tmp.file("v2.lmq"), m.model, nullptr);
  EXPECT_EQ(read_file(tmp.file("v2.lmq")).substr(0, 8), "LMQCKPT2");
  EXPECT_EQ(parse_checkpoint(read_file(tmp.file("v2.lmq")), "v2").format, 2);
  EXPECT_EQ(parse_checkpoint(read_file(format1("tiny.lmq")), "v1").format, 1);
  EXPECT_NEAR(test_perplexity(load_model(tmp.file("v2.lmq")).model, c), 75.05792174479875, 1e-6);
}

TEST(Checkpoint, EveryHeaderByteIsCoveredByAChecksum) {
  TempDir tmp;
  const LoadedModel m = load_model(format1("tiny.lmq"));
  save_model(tmp.file("m.lmq"), m.model, nullptr);
  const std::string good = read_file(tmp.file("m.lmq"));
  uint64_t len = 0;
  for (int i = 0; i < 8; ++i)
    len |= static_cast<uint64_t>(static_cast<unsigned char>(good[8 + i])) << (8 * i);
  // Every byte of magic, length, header and header hash; then every 97th payload byte.
  int refused = 0, tried = 0;
  for (size_t i = 0; i < good.size(); i += i < 16 + len + 32 ? 1 : 97) {
    std::string bad = good;
    bad[i] ^= 0x01;
    ++tried;
    try {
      (void)load_model_bytes(bad, "m.lmq");
    } catch (const std::runtime_error&) {
      ++refused;
    }
  }
  EXPECT_EQ(refused, tried);
  EXPECT_GT(tried, 1000);
  // Bytes after the payload, and a file cut anywhere, are refused too.
  EXPECT_THROW_MESSAGE(load_model_bytes(good + "x", "m.lmq"), std::runtime_error,
                       "after the payload");
  for (size_t n : {size_t{10}, size_t{20}, static_cast<size_t>(16 + len + 10), good.size() - 1})
    EXPECT_THROW(load_model_bytes(good.substr(0, n), "m.lmq"), std::runtime_error) << n;
}

TEST(Checkpoint, HeaderEditsPastTheChecksumAreRefusedByTheStrictReader) {
  TempDir tmp;
  const LoadedModel m = load_model(format1("tiny.lmq"));
  save_model(tmp.file("m.lmq"), m.model, nullptr);
  const std::string good = read_file(tmp.file("m.lmq"));
  EXPECT_NO_THROW(load_model_bytes(edited(good, [](nlohmann::json&) {}), "m"));
  struct Case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"unknown field", [](nlohmann::json& h) { h["comment"] = 1; }, "unknown field 'comment'"},
      {"missing field", [](nlohmann::json& h) { h.erase("payload_sha256"); }, "payload_sha256"},
      {"wrong type", [](nlohmann::json& h) { h["kind"] = 3; }, "field 'kind' has the wrong type"},
      {"format disagrees", [](nlohmann::json& h) { h["format"] = 1; }, "format 1 in a format-2"},
      {"unknown kind", [](nlohmann::json& h) { h["kind"] = "models"; }, "unknown kind"},
      {"renamed tensor", [](nlohmann::json& h) { h["tensors"][2]["name"] = "rnn.weight_ih_l>"; },
       "unknown tensor rnn.weight_ih_l>"},
      {"duplicated tensor",
       [](nlohmann::json& h) { h["tensors"][2]["name"] = h["tensors"][1]["name"]; },
       "appears twice"},
      {"moved tensor", [](nlohmann::json& h) { h["tensors"][1]["offset"] = 4; }, "does not lie"},
      {"extra key in a tensor", [](nlohmann::json& h) { h["tensors"][0]["stride"] = 1; },
       "tensor entry"},
      {"dropped tensor",
       [](nlohmann::json& h) {
         auto& t = h["tensors"];
         const uint64_t n = t.back()["bytes"];
         t.erase(t.size() - 1);
         h["payload_bytes"] = h["payload_bytes"].get<uint64_t>() - n;
       },
       "after the payload"},
      {"unknown config field", [](nlohmann::json& h) { h["config"]["proj"] = 4; }, "proj"},
  };
  for (const auto& k : cases)
    EXPECT_THROW_MESSAGE(load_model_bytes(edited(good, k.edit), "m.lmq"), std::runtime_error,
                         k.message);
}

TEST(Checkpoint, QuantizedFilesHoldExactlyWhatTheirConfigurationGives) {
  TempDir tmp;
  const LoadedModel m = load_model(format1("tiny.lmq"));
  const Corpus c = tiny_corpus();
  LoadedModel src = m;
  src.vocab = c.vocab.words();
  src.vocab_hash = c.vocab.hash();
  QuantConfig q;
  q.bits = 4, q.granularity = Granularity::kRow;
  save_quantized(tmp.file("p.lmq"), src, quantize_model(m.model, q), /*packed=*/true);
  const std::string good = read_file(tmp.file("p.lmq"));
  EXPECT_NO_THROW(parse_quantized(good, "p"));
  auto rename = [](const std::string& from, const std::string& to) {
    return [=](nlohmann::json& h) {
      for (auto& t : h["tensors"])
        if (t["name"] == from) t["name"] = to;
    };
  };
  // The issue's case: a renamed tensor used to load, its matrix left uninitialised (NaN scores).
  EXPECT_THROW_MESSAGE(
      parse_quantized(edited(good, rename("input.l0.packed", "input.l0.packe>")), "p"),
      std::runtime_error, "unknown tensor input.l0.packe>");
  EXPECT_THROW_MESSAGE(
      parse_quantized(edited(good, rename("decoder.bias", "decoder.biaz")), "p", torch::kCPU,
                      /*float_matrices=*/false),
      std::runtime_error, "unknown tensor decoder.biaz");
  EXPECT_THROW_MESSAGE(
      parse_quantized(edited(good, [](nlohmann::json& h) { h["meta"]["quant"]["bits"] = 3; }), "p"),
      std::runtime_error, "stored at 4 bits, its configuration says 3");
  EXPECT_THROW_MESSAGE(
      parse_quantized(edited(good, [](nlohmann::json& h) { h["meta"]["quant"]["rotate"] = true; }),
                      "p"),
      std::runtime_error, "rotation_seed is missing");
  EXPECT_THROW_MESSAGE(
      parse_quantized(
          edited(good, [](nlohmann::json& h) { h["meta"]["quant"]["targets"] = "recurrent"; }),
          "p"),
      std::runtime_error, "unknown tensor");
  EXPECT_THROW_MESSAGE(
      parse_quantized(
          edited(good, [](nlohmann::json& h) { h["meta"]["quant"]["granularity"] = "tensor"; }),
          "p"),
      std::runtime_error, "steps that differ within one tensor group");
  EXPECT_THROW_MESSAGE(
      parse_quantized(edited(good, [](nlohmann::json& h) { h["meta"]["quant"]["x"] = 1; }), "p"),
      std::runtime_error, "unknown quantization setting 'x'");
  EXPECT_THROW_MESSAGE(
      parse_quantized(edited(good, [](nlohmann::json& h) { h["meta"]["note"] = 1; }), "p"),
      std::runtime_error, "unknown field 'note'");
}

TEST(Checkpoint, NoNonFiniteResultLeavesAnEvaluationOrAScore) {
  const Corpus c = tiny_corpus();
  LstmLm model = load_model(format1("tiny.lmq")).model;
  {
    torch::NoGradGuard g;
    model->w_ih[1][3][2] = std::nanf("");
  }
  EXPECT_THROW_MESSAGE(evaluate(model, c.test), std::runtime_error,
                       "the model's tensor rnn.weight_ih_l1 holds NaN or Inf");
  SentenceScorer scorer(model, c.vocab);
  EXPECT_THROW_MESSAGE(scorer.score("the cat sat"), std::runtime_error,
                       "'the cat sat' is not finite");
  QuantConfig q;
  EXPECT_THROW_MESSAGE(quantize_model(model, q), std::runtime_error,
                       "matrix input.l1: its float weights already hold NaN or Inf");
}

TEST(Records, AreReadStrictly) {
  Record r;
  r.source.split = "test";
  r.config.method = Method::kFloat;
  r.asked = r.config;
  r.eval.tokens = 10, r.eval.loss = 1.5, r.eval.perplexity = std::exp(1.5);
  const std::string line = r.to_json().dump();
  EXPECT_EQ(read_records(line + "\n" + line + "\n").size(), 2u);
  auto j = r.to_json();
  j["perplexity"] = nullptr;  // how nlohmann writes a NaN
  EXPECT_THROW_MESSAGE(read_records(line + "\n" + j.dump() + "\n"), std::runtime_error,
                       "line 2: record field 'perplexity' is missing or not a number");
  j = r.to_json();
  j["perplexty"] = 3;
  EXPECT_THROW_MESSAGE(read_records(j.dump()), std::runtime_error,
                       "line 1: unknown record field 'perplexty'");
  j = r.to_json();
  j["config"] = {{"method", "clip"},     {"bits", 4},        {"clip", "max"},
                 {"granularity", "row"}, {"targets", "all"}, {"bitz", 3}};
  EXPECT_THROW_MESSAGE(read_records("[" + j.dump() + "]"), std::runtime_error,
                       "record 1: unknown quantization setting 'bitz'");
  EXPECT_THROW_MESSAGE(read_records("{\"loss\": 1"), std::runtime_error, "line 1");
}

TEST(Registry, IsParsedStrictly) {
  EXPECT_FALSE(registered_corpora().empty());
  const std::string good = R"({"c": {"folder": "c", "files": {
    "train.txt": {"sha256": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
                  "bytes": 1, "urls": ["https://example.org/t"]},
    "valid.txt": {"sha256": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
                  "bytes": 1, "urls": []},
    "test.txt": {"sha256": "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f",
                 "bytes": 1, "urls": []}}}})";
  EXPECT_EQ(parse_registry(good).size(), 1u);
  auto bad = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  EXPECT_THROW_MESSAGE(parse_registry(bad("\"folder\": \"c\"", "\"folder\": \"../c\"")),
                       std::runtime_error, "not one plain name");
  EXPECT_THROW_MESSAGE(
      parse_registry(bad("\"bytes\": 1, \"urls\": [\"https", "\"size\": 1, \"urls\": [\"https")),
      std::runtime_error, "unknown field 'size'");
  EXPECT_THROW_MESSAGE(parse_registry(bad("9e9fa1ad", "9E9FA1AD")), std::runtime_error,
                       "64 lowercase hex");
  EXPECT_THROW_MESSAGE(parse_registry(bad("https://example.org/t", "file:///etc/passwd")),
                       std::runtime_error, "not an http(s) address");
  EXPECT_THROW(parse_registry("{\"c\": "), std::runtime_error);
}

TEST(FuzzFindings, AreRefusedCleanly) {
  // tools/fuzz.sh's findings, kept (tests/data/fuzz). Under tools/sanitize.sh (UBSan) each was
  // undefined behaviour before its fix; here each must be a clean answer.
  const std::string dir = std::string(LMQUANT_TEST_DATA_DIR) + "/fuzz/";
  // A record whose integer field holds -8.9e52: nlohmann casts floats to integers unchecked.
  EXPECT_THROW_MESSAGE(read_records(read_file(dir + "records_float_count.jsonl")),
                       std::runtime_error, "out of range");
  // A registry whose "bytes" is 1.1e254.
  EXPECT_THROW_MESSAGE(parse_registry(read_file(dir + "registry_float_bytes.json")),
                       std::runtime_error, "out of range");
  // A valid packed file: its empty tensors (an OCS source list without splits) were copied with
  // memcpy from a null data pointer.
  const QuantizedFile f = parse_quantized(read_file(dir + "quantized_empty_tensor.lmq"), "q");
  EXPECT_FALSE(f.matrices.empty());
  // A torch.save archive with an empty storage (lm/torch_pickle.h): memcpy from a null pointer.
  EXPECT_THROW_MESSAGE(load_model(dir + "pytorch_empty_storage.pt"), std::runtime_error,
                       "pytorch_empty_storage.pt");
}
