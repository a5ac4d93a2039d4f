// lmquant tokenizer: train a sentencepiece model on a corpus's train split, or encode text with
// one (pieces per line, to look at what the model does).
#include <chrono>
#include <filesystem>
#include <iostream>

#include "cli.h"
#include "corpus/spm_tokenizer.h"

namespace lmquant::cli {
namespace {

int tokenizer_train(const std::vector<std::string>& args) {
  CommonOptions common;
  SpmTrainOptions t;
  std::string out;
  po::options_description desc;
  po::options_description m("Tokenizer training");
  // clang-format off
  m.add_options()
    ("type", po::value(&t.type)->default_value(t.type), "unigram or bpe")
    ("vocab-size", po::value(&t.vocab_size)->default_value(t.vocab_size),
     "pieces in the model, special pieces included")
    ("seed", po::value(&t.seed)->default_value(t.seed), "sentencepiece's random seed")
    ("spm-threads", po::value(&t.threads)->default_value(t.threads),
     "sentencepiece trainer threads (the same inputs, seed and threads give the same file)")
    ("out", po::value(&out)->default_value(""),
     "the .model file to write (default: <corpus>-<type><vocab-size>.model here)");
  // clang-format on
  desc.add(m).add(data_options(common));
  po::variables_map vm;
  if (!parse("tokenizer train", "[--type unigram|bpe] [--vocab-size 8000] [--out PATH]", desc, args,
             vm))
    return 0;
  const CorpusLocation loc = locate(common);
  if (out.empty()) out = loc.name + "-" + t.type + std::to_string(t.vocab_size) + ".model";
  const std::string input = (std::filesystem::path(loc.dir) / "train.txt").string();
  if (!common.quiet) note("training a " + t.type + " sentencepiece model on " + input + "...");
  const auto t0 = std::chrono::steady_clock::now();
  train_spm(input, out, t);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const SpmTokenizer spm = SpmTokenizer::load(out);
  std::printf("%s: %s, %lld pieces, sha256 %s (%.1f s); use it with --tokenizer spm:%s\n",
              out.c_str(), t.type.c_str(), static_cast<long long>(spm.size()), spm.sha256().c_str(),
              secs, out.c_str());
  return 0;
}

int tokenizer_encode(const std::vector<std::string>& args) {
  std::string model, input = "-";
  bool ids = false;
  po::options_description desc;
  po::options_description m("Encoding");
  // clang-format off
  m.add_options()
    ("model", po::value(&model)->required(), "a sentencepiece .model file")
    ("input", po::value(&input)->default_value(input), "text, one sentence per line ('-': stdin)")
    ("ids", po::bool_switch(&ids)->default_value(false), "print ids instead of pieces");
  // clang-format on
  desc.add(m);
  po::variables_map vm;
  if (!parse("tokenizer encode", "--model M.model [--ids] < text", desc, args, vm)) return 0;
  const SpmTokenizer spm = SpmTokenizer::load(model);
  for_each_input_line(input, [&](const std::string& line) {
    const auto encoded = spm.encode(line);
    for (size_t i = 0; i < encoded.size(); ++i) {
      if (i) std::cout << ' ';
      if (ids)
        std::cout << encoded[i];
      else
        std::cout << spm.vocab().word(encoded[i]);
    }
    std::cout << '\n';
  });
  return 0;
}

}  // namespace

int cmd_tokenizer(const std::vector<std::string>& args) {
  const std::string usage =
      "usage: lmquant tokenizer train [--type unigram|bpe] [--vocab-size N] [--out PATH]\n"
      "       lmquant tokenizer encode --model M.model [--ids] < text\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << usage;
    return 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "train") return tokenizer_train(rest);
  if (args[0] == "encode") return tokenizer_encode(rest);
  throw std::invalid_argument("unknown tokenizer action '" + args[0] +
                              "'; valid values: train, encode");
}

}  // namespace lmquant::cli
