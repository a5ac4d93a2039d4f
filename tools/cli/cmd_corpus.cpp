// lmquant corpus: locate (download if needed), verify and tokenize a corpus; print its counts.
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"

namespace lmquant::cli {

int cmd_corpus(const std::vector<std::string>& args) {
  CommonOptions common;
  bool json = false;
  po::options_description desc;
  po::options_description o("Output");
  o.add_options()("json", po::bool_switch(&json)->default_value(false), "print one JSON object");
  desc.add(data_options(common)).add(o);
  po::variables_map vm;
  if (!parse("corpus", "[--corpus wikitext2] [--data-dir DIR] [--json]", desc, args, vm)) return 0;
  const auto t0 = std::chrono::steady_clock::now();
  Corpus c = load_corpus(common);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = {{"corpus", c.location.name}, {"dir", c.location.dir},
                      {"source", c.location.source}, {"verified", c.location.verified},
                      {"vocab", c.vocab.size()},     {"vocab_hash", c.vocab.hash()},
                      {"train_tokens", c.train.numel()}, {"valid_tokens", c.valid.numel()},
                      {"test_tokens", c.test.numel()},   {"seconds", secs},
                      {"tokenizer", c.tokenizer},
                      {"train_words", c.train_words},    {"valid_words", c.valid_words},
                      {"test_words", c.test_words}};
  if (json) {
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("%s in %s (%s%s)\nvocabulary %lld types; tokens incl. <eos>: train %lld, valid "
                "%lld, test %lld (%.2f s)\n",
                c.location.name.c_str(), c.location.dir.c_str(), c.location.source.c_str(),
                c.location.verified ? ", SHA-256 verified" : "",
                static_cast<long long>(c.vocab.size()), static_cast<long long>(c.train.numel()),
                static_cast<long long>(c.valid.numel()), static_cast<long long>(c.test.numel()),
                secs);
    if (c.tokenizer != "word")
      std::printf("%s: tokens per word (incl. <eos>): train %.3f, valid %.3f, test %.3f\n",
                  c.tokenizer.substr(0, 16).c_str(), c.tokens_per_word(Split::kTrain),
                  c.tokens_per_word(Split::kValid), c.tokens_per_word(Split::kTest));
  }
  return 0;
}

}  // namespace lmquant::cli
