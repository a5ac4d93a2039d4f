// The catalogue of bad inputs (the reliability issue): each runs the CLI and expects one line
// "error: ..." naming the file or flag (the last line of stderr, after any progress notes), a
// non-zero exit code, and no crash (no signal, no "terminate called"). The test prints the
// catalogue as a Markdown table (input, expected, seen).
#include <fstream>
#include <iostream>

#include "lm/model_io.h"
#include "test_utils.h"
#include "util/atomic_file.h"

using namespace lmquant;
using lmquant::test::run_cli;
using lmquant::test::run_shell;
using lmquant::test::TempDir;
using lmquant::test::tiny_corpus_dir;
using lmquant::test::write_text;

namespace {

struct Case {
  std::string input;     // what is wrong
  std::string args;      // CLI arguments, or a bash script when `shell`
  std::string expected;  // a substring of the error line
  bool shell = false;
};

std::string slurp(const std::string& p) { return read_file(p); }

void corpus_dir(const std::string& dir, const std::string& train, const std::string& valid,
                const std::string& test) {
  std::filesystem::create_directories(dir);
  write_text(dir + "/train.txt", train);
  write_text(dir + "/valid.txt", valid);
  write_text(dir + "/test.txt", test);
}

void save_pytorch(const std::string& path, const LstmLm& m, const std::string& drop,
                  const std::string& misshape) {
  c10::Dict<std::string, torch::Tensor> d;
  for (const auto& [name, t] : m->named_weights()) {
    if (name == drop) continue;
    d.insert(name, name == misshape ? t.narrow(0, 0, 1).clone() : t.clone());
  }
  const auto bytes = torch::pickle_save(c10::IValue(d));
  write_text(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace

TEST(CliErrors, BadInputCatalogue) {
  TempDir tmp;
  const std::string tiny = tiny_corpus_dir();
  const std::string c = " --corpus " + tiny;
  // A model trained on the tiny corpus, and broken copies of it.
  const std::string m = tmp.file("m.lmq");
  ASSERT_EQ(
      run_cli("train -q --emb 8 --hidden 8 --epochs 1 --batch 4 --bptt 5 --out " + m + c).code, 0);
  const std::string good = slurp(m);
  write_text(tmp.file("trunc.lmq"), good.substr(0, good.size() / 2));
  std::string corrupt = good;
  corrupt[corrupt.size() - 3] ^= 0x5a;
  write_text(tmp.file("corrupt.lmq"), corrupt);
  {
    LoadedModel l = load_model(m);
    save_pytorch(tmp.file("missing.pt"), l.model, "rnn.bias_hh_l1", "");
    save_pytorch(tmp.file("shape.pt"), l.model, "", "rnn.weight_hh_l0");
    torch::NoGradGuard g;
    l.model->named_weights()[2].second.view(-1)[0] = NAN;
    Vocab v;
    for (const auto& w : l.vocab) v.add(w);
    save_model(tmp.file("nan.lmq"), l.model, &v);
  }
  write_text(tmp.file("junk.lmq"), "hello, not a model");
  write_text(tmp.file("v.txt"), "a\nb\n");  // a vocabulary file without <eos>
  // Corpora: missing split, empty, non-UTF-8, truncated mid-character, another vocabulary.
  corpus_dir(tmp.file("nosplit"), "a b\n", "a\n", "a\n");
  std::filesystem::remove(tmp.file("nosplit/test.txt"));
  corpus_dir(tmp.file("empty"), "", "a\n", "a\n");
  corpus_dir(tmp.file("latin1"), "caf\xe9 au lait\n", "a\n", "a\n");
  corpus_dir(tmp.file("cut"), "a b\n", "a\n", "a caf\xc3");
  corpus_dir(tmp.file("other"), "x y z\n", "x\n", "y\n");
  // WikiText-2's file names with other contents: the checksum does not match.
  corpus_dir(tmp.file("fake/wikitext-2"), "a b\n", "a\n", "a\n");
  const std::string fake = " --corpus wikitext2 --no-download --data-dir " + tmp.file("fake");
  const std::string q = "quantize --model " + m + c;

  const std::vector<Case> cases = {
      {"missing corpus folder", "corpus --corpus " + tmp.file("none"),
       "--corpus " + tmp.file("none")},
      {"corpus missing test.txt", "corpus --corpus " + tmp.file("nosplit"), "missing"},
      {"empty train.txt", "corpus --corpus " + tmp.file("empty"), "train.txt is empty"},
      {"non-UTF-8 corpus (Latin-1)", "corpus --corpus " + tmp.file("latin1"),
       "train.txt: not valid UTF-8 at line 1"},
      {"corpus truncated mid-character", "corpus --corpus " + tmp.file("cut"),
       "test.txt: not valid UTF-8 at line 1"},
      {"checksum mismatch", "corpus" + fake, "SHA-256"},
      {"unknown corpus name", "corpus --corpus wikitext9", "--corpus wikitext9"},
      {"offline, corpus not on disk",
       "env -u LMQUANT_DATA XDG_CACHE_HOME=" + tmp.file("cache") +
           " \"$LMQUANT\" corpus --corpus wikitext2 --no-download --data-dir " + tmp.file("none"),
       "corpus wikitext2 not found", true},
      {"missing checkpoint", "eval --model " + tmp.file("none.lmq") + c, "none.lmq"},
      {"truncated checkpoint", "eval --model " + tmp.file("trunc.lmq") + c, "trunc.lmq"},
      {"corrupt checkpoint", "eval --model " + tmp.file("corrupt.lmq") + c, "corrupt.lmq"},
      {"checkpoint with NaN", "eval --model " + tmp.file("nan.lmq") + c, "NaN"},
      {"not a model file", "eval --model " + tmp.file("junk.lmq") + c, "junk.lmq: neither"},
      {"checkpoint from another vocabulary", "eval --model " + m + " --corpus " + tmp.file("other"),
       "vocabulary"},
      {"PyTorch file missing a key", "eval --model " + tmp.file("missing.pt") + c,
       "rnn.bias_hh_l1"},
      {"PyTorch file with a misshapen key", "eval --model " + tmp.file("shape.pt") + c,
       "rnn.weight_hh_l0"},
      {"bits too low", q + " --bits 1", "bits must be in 2..16, got 1"},
      {"bits too high", q + " --bits 17", "bits must be in 2..16, got 17"},
      {"expand ratio > 1", q + " --method ocs --expand-ratio 1.5", "[0, 1]"},
      {"expand ratio < 0", q + " --method ocs --expand-ratio -0.1", "[0, 1]"},
      {"percentile out of range", q + " --clip percentile:101", "p must be in (0, 100]"},
      {"fixed clip threshold out of range", q + " --clip fixed:0", "c must be in (0, 1]"},
      {"unknown clip rule", q + " --clip median", "valid values: max, fixed:C"},
      {"unknown granularity", q + " --granularity column", "valid values"},
      {"per-matrix granularity without NAME=", q + " --matrix-granularity group:4",
       "--matrix-granularity: 'group:4' is not NAME=VALUE"},
      {"unknown per-matrix granularity", q + " --matrix-granularity input.l0=column",
       "--matrix-granularity"},
      {"row budget for a matrix without row widths",
       q + " --granularity row --row-widths 2,4 --row-budget 3 --matrix-row-budget input.l0=3",
       "matrix input.l0, which has no row widths"},
      {"joint budget without row widths", q + " --joint-budget 3", "--joint-budget"},
      {"joint budget on an impossible size",
       q + " --granularity row --row-widths 2,4 --joint-budget 0.5", "cannot meet the size"},
      {"unknown method", q + " --method prune", "valid values"},
      {"unknown split", "eval --model " + m + " --split dev" + c,
       "valid values: train, valid, test"},
      {"unknown tokenizer", "eval --model " + m + " --tokenizer bpe" + c,
       "valid values: word, spm:PATH"},
      {"unknown preset", "train --out x.lmq --preset huge" + c, "--preset: unknown preset 'huge'"},
      {"unknown option", "eval --model " + m + " --frobnicate" + c, "frobnicate"},
      {"negative threads", "eval --model " + m + " --threads -2" + c, "--threads"},
      {"unwritable --out (train)",
       "train -q --emb 8 --hidden 8 --epochs 1 --out /proc/lmq/m.lmq" + c, "/proc/lmq/m.lmq"},
      {"unwritable --save-quantized", q + " --bits 4 --save-quantized /proc/lmq/q.lmq",
       "/proc/lmq/q.lmq"},
      {"unwritable sweep --out",
       "sweep --bits 4 --methods clip --clips max --out /proc/lmq/s.jsonl --model " + m + c,
       "/proc/lmq/s.jsonl"},
      {"unwritable --report-dir", "--bits 4 --model " + m + " --report-dir /proc/lmq/r" + c,
       "--report-dir /proc/lmq/r"},
      {"full disk while writing a checkpoint (file-size limit, EFBIG)",
       "ulimit -f 4; trap '' XFSZ; \"$LMQUANT\" train -q --emb 64 --hidden 64 --epochs 1 --out " +
           tmp.file("full.lmq") + c,
       "disk full?", true},
      {"full disk while writing a quantized file",
       "ulimit -f 4; trap '' XFSZ; \"$LMQUANT\" " + q + " --bits 4 --save-quantized " +
           tmp.file("fullq.lmq"),
       "disk full?", true},
      {"empty input to score", "score --model " + m + " --input /dev/null" + c, "empty input"},
      {"missing sentencepiece model",
       "eval --model " + m + " --tokenizer spm:" + tmp.file("no.model") + c, "no.model"},
      {"missing --vocab file", "eval --model " + m + " --vocab " + tmp.file("no.txt") + c,
       "--vocab: cannot read " + tmp.file("no.txt")},
      {"--vocab file without <eos>", "eval --model " + m + " --vocab " + tmp.file("v.txt") + c,
       "has no <eos>"},
      {"--vocab with a sentencepiece tokenizer",
       "eval --model " + m + " --tokenizer spm:x.model --vocab " + tmp.file("v.txt") + c,
       "goes with the word tokenizer"},
      {"export --int8 of a float model",
       "export --int8 --model " + m + " --onnx " + tmp.file("m.onnx"), "--model"},
      {"unwritable export --onnx", "export --model " + m + " --onnx /proc/lmq/m.onnx",
       "--onnx: cannot write /proc/lmq/m.onnx"},
      {"corpus --write-ids unwritable", "corpus --write-ids /proc/lmq/ids.bin" + c,
       "--write-ids: cannot write /proc/lmq/ids.bin"},
      {"unknown --model-format", "eval --model " + m + " --model-format keras" + c,
       "--model-format: unknown model format 'keras'; valid values: auto, word-lm, awd-lstm"},
      {"--layer-hidden that is not a list of sizes",
       "train -q --layer-hidden 16,x --out " + tmp.file("s.lmq") + c, "--layer-hidden"},
      {"--proj as wide as the cell", "train -q --hidden 8 --proj 8 --out " + tmp.file("s.lmq") + c,
       "--proj"},
  };
  std::cout << "| input | expected | seen | exit |\n|---|---|---|---|\n";
  for (const auto& k : cases) {
    const auto r = k.shell ? run_shell(k.args) : run_cli(k.args);
    // The error is the last line of stderr (progress notes may come before it).
    std::string line = r.err;
    while (!line.empty() && line.back() == '\n') line.pop_back();
    if (const size_t nl = line.rfind('\n'); nl != std::string::npos) line = line.substr(nl + 1);
    std::cout << "| " << k.input << " | `" << k.expected << "` | " << line << " | " << r.code
              << " |\n";
    EXPECT_TRUE(r.code == 1 || r.code == 2) << k.input << ": exit " << r.code << "\n" << r.err;
    EXPECT_EQ(line.rfind("error: ", 0), 0u) << k.input << ": " << r.err;
    EXPECT_EQ(r.err.find("error: "), r.err.size() - line.size() - (r.err.back() == '\n'))
        << k.input << ": more than one error line:\n"
        << r.err;
    EXPECT_NE(line.find(k.expected), std::string::npos) << k.input << ": " << r.err;
  }
  // Nothing half-written was left behind by the failures above.
  for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  EXPECT_FALSE(std::filesystem::exists(tmp.file("full.lmq")));
  EXPECT_FALSE(std::filesystem::exists(tmp.file("fullq.lmq")));
}
