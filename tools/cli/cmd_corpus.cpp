// lmquant corpus: locate (download if needed), verify and tokenize a corpus; print its counts.
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "util/atomic_file.h"

namespace lmquant::cli {

int cmd_corpus(const std::vector<std::string>& args) {
  CommonOptions common;
  bool json = false;
  std::string ids_path, split = "test";
  po::options_description desc;
  po::options_description o("Output");
  // clang-format off
  o.add_options()
    ("json", po::bool_switch(&json)->default_value(false), "print one JSON object")
    ("write-ids", po::value(&ids_path),
     "write the --split's token ids to this file (int64 little-endian, in corpus order): the "
     "input of tools/onnx/ort_eval.js")
    ("split", po::value(&split)->default_value(split), "train, valid or test (with --write-ids)");
  // clang-format on
  desc.add(data_options(common)).add(o);
  po::variables_map vm;
  if (!parse("corpus", "[--corpus wikitext2] [--data-dir DIR] [--json] [--write-ids F --split S]",
             desc, args, vm))
    return 0;
  const Split s = with_flag("--split", [&] { return parse_split(split); });
  const auto t0 = std::chrono::steady_clock::now();
  Corpus c = load_corpus(common);
  if (!ids_path.empty()) {
    const torch::Tensor ids = c.split(s).to(torch::kLong).contiguous();
    with_flag("--write-ids", [&] {
      write_file_atomic(ids_path,
                        std::string(static_cast<const char*>(ids.data_ptr()), ids.nbytes()));
    });
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = {{"corpus", c.location.name},       {"dir", c.location.dir},
                      {"source", c.location.source},     {"verified", c.location.verified},
                      {"vocab", c.vocab.size()},         {"vocab_hash", c.vocab.hash()},
                      {"train_tokens", c.train.numel()}, {"valid_tokens", c.valid.numel()},
                      {"test_tokens", c.test.numel()},   {"seconds", secs},
                      {"tokenizer", c.tokenizer},        {"train_words", c.train_words},
                      {"valid_words", c.valid_words},    {"test_words", c.test_words}};
  if (!c.vocab_path.empty()) {
    j["vocab_file"] = c.vocab_path;
    j["oov"] = {{"train", c.train_oov}, {"valid", c.valid_oov}, {"test", c.test_oov}};
  }
  if (json) {
    std::cout << j.dump() << std::endl;
  } else {
    std::printf(
        "%s in %s (%s%s)\nvocabulary %lld types; tokens incl. <eos>: train %lld, valid "
        "%lld, test %lld (%.2f s)\n",
        c.location.name.c_str(), c.location.dir.c_str(), c.location.source.c_str(),
        c.location.verified ? ", SHA-256 verified" : "", static_cast<long long>(c.vocab.size()),
        static_cast<long long>(c.train.numel()), static_cast<long long>(c.valid.numel()),
        static_cast<long long>(c.test.numel()), secs);
    if (c.tokenizer != "word")
      std::printf("%s: tokens per word (incl. <eos>): train %.3f, valid %.3f, test %.3f\n",
                  c.tokenizer.substr(0, 16).c_str(), c.tokens_per_word(Split::kTrain),
                  c.tokens_per_word(Split::kValid), c.tokens_per_word(Split::kTest));
  }
  return 0;
}

}  // namespace lmquant::cli
