// lmquant eval: perplexity of a model on a split, the pytorch/examples protocol.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "lm/evaluate.h"
#include "quant/quantized_io.h"

namespace lmquant::cli {

int cmd_eval(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, split = "test";
  int64_t batch = 10, bptt = 35;
  bool json = false;
  po::options_description desc;
  po::options_description m("Model and evaluation");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(),
     "model file: an lmquant checkpoint (.lmq), a quantized file (quantize --save-quantized) or a "
     "PyTorch word_language_model state_dict")
    ("split", po::value(&split)->default_value(split), "train, valid or test")
    ("batch", po::value(&batch)->default_value(batch), "evaluation batch size (reference: 10)")
    ("bptt", po::value(&bptt)->default_value(bptt), "chunk length (reference: 35)")
    ("json", po::bool_switch(&json)->default_value(false), "print one JSON object");
  // clang-format on
  desc.add(m).add(data_options(common)).add(compute_options(common));
  po::variables_map vm;
  if (!parse("eval", "--model M [--split test] [--json]", desc, args, vm)) return 0;
  const Split s = parse_split(split);
  if (batch <= 0 || bptt <= 0) throw std::invalid_argument("--batch and --bptt must be positive");
  const auto device = setup_compute(common);
  LoadedModel loaded = load_any_model(model_path, device);
  Corpus corpus = load_corpus(common, &loaded);
  EvalOptions eo{batch, bptt, progress_bar(common.quiet || json)};
  const EvalResult r = evaluate(loaded.model, corpus.split(s), eo);
  nlohmann::json j = {{"model", model_path},
                      {"format", loaded.format},
                      {"config", loaded.model->config().to_json()},
                      {"corpus", corpus.location.name},
                      {"split", split},
                      {"tokenizer", corpus.tokenizer},
                      {"perplexity", r.perplexity},
                      {"word_perplexity", word_normalised_perplexity(r.loss, corpus.tokens(s),
                                                                     corpus.words(s))},
                      {"loss", r.loss},
                      {"tokens", r.tokens},
                      {"split_tokens", corpus.tokens(s)},
                      {"split_words", corpus.words(s)},
                      {"seconds", r.seconds},
                      {"tokens_per_s", r.tokens_per_s},
                      {"batch", batch},
                      {"bptt", bptt},
                      {"threads", at::get_num_threads()},
                      {"device", device.str()}};
  if (json) {
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("%s %s perplexity %.2f (loss %.4f, %lld targets, %.1f s, %.0f tokens/s)\n",
                model_path.c_str(), split.c_str(), r.perplexity, r.loss,
                static_cast<long long>(r.tokens), r.seconds, r.tokens_per_s);
    if (corpus.tokenizer != "word")
      std::printf("perplexity %.2f per token (%s), %.2f per word (word-normalised, %.3f tokens "
                  "per word)\n",
                  r.perplexity, corpus.tokenizer.substr(0, 16).c_str(),
                  j["word_perplexity"].get<double>(), corpus.tokens_per_word(s));
  }
  return 0;
}

}  // namespace lmquant::cli
