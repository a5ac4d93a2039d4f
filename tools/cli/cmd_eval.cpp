// lmquant eval: perplexity of a model on a split, the pytorch/examples protocol.
#include <sys/resource.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "engine/int8_engine.h"
#include "lm/evaluate.h"
#include "quant/quantized_io.h"

namespace lmquant::cli {

int cmd_eval(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, split = "test";
  std::string engine = "float";
  bool decoder_only = false;
  int64_t batch = 10, bptt = 35;
  bool json = false;
  po::options_description desc;
  po::options_description m("Model and evaluation");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(),
     "model file: an lmquant checkpoint (.lmq), a quantized file (quantize --save-quantized) or a "
     "PyTorch word_language_model saved by torch.save (its state_dict or the model)")
    ("split", po::value(&split)->default_value(split), "train, valid or test")
    ("batch", po::value(&batch)->default_value(batch), "evaluation batch size (reference: 10)")
    ("bptt", po::value(&bptt)->default_value(bptt), "chunk length (reference: 35)")
    ("engine", po::value(&engine)->default_value(engine),
     "float, or int8: a quantized/packed model (--granularity row or tensor, <= 8 bits) runs "
     "W_ih, W_hh and the decoder as int8 codes x int8 activations (per-row dynamic "
     "quantization, int32 accumulation, oneDNN), the embedding gathered from its codes")
    ("int8-decoder-only", po::bool_switch(&decoder_only)->default_value(false),
     "with --engine int8: only the decoder in int8, the LSTM in float (for comparison)")
    ("json", po::bool_switch(&json)->default_value(false), "print one JSON object");
  // clang-format on
  desc.add(m)
      .add(data_options(common))
      .add(model_file_options(common))
      .add(compute_options(common));
  po::variables_map vm;
  if (!parse("eval", "--model M [--split test] [--json]", desc, args, vm)) return 0;
  const Split s = parse_split(split);
  if (batch <= 0 || bptt <= 0) throw std::invalid_argument("--batch and --bptt must be positive");
  const auto device = setup_compute(common);
  const EngineKind kind = with_flag("--engine", [&] { return parse_engine(engine); });
  if (decoder_only && kind != EngineKind::kInt8)
    throw std::invalid_argument("--int8-decoder-only needs --engine int8");
  if (kind == EngineKind::kInt8 && !device.is_cpu())
    throw std::invalid_argument("--engine int8 runs on the CPU; pass --device cpu");
  QuantizedFile file;
  if (kind == EngineKind::kInt8) {
    // The engine runs from the codes: without --int8-decoder-only no float copy of a quantized
    // matrix is ever made.
    file = with_flag("--model", [&] { return read_quantized(model_path, device, decoder_only); });
  } else {
    file.loaded = load_model_file(model_path, common, device);
  }
  LoadedModel& loaded = file.loaded;
  Corpus corpus = load_corpus(common, &loaded);
  EvalOptions eo{batch, bptt, progress_bar(common.quiet || json), {}};
  if (kind == EngineKind::kInt8)
    eo.engine = with_flag("--engine", [&] { return int8_engine(file, !decoder_only, true); });
  const EvalResult r = evaluate(loaded.model, corpus.split(s), eo);
  nlohmann::json j = {
      {"model", model_path},
      {"format", loaded.format},
      {"engine", kind == EngineKind::kInt8 && decoder_only ? "int8-decoder" : engine},
      {"config", loaded.model->config().to_json()},
      {"model_desc", loaded.model->config().describe()},
      {"corpus", corpus.location.name},
      {"split", split},
      {"tokenizer", corpus.tokenizer},
      {"perplexity", r.perplexity},
      {"word_perplexity", word_normalised_perplexity(r.loss, corpus.tokens(s), corpus.words(s))},
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
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  j["peak_rss_mib"] = usage.ru_maxrss / 1024.0;  // the whole process: load, engine, evaluation
  if (!loaded.source.empty()) j["source"] = loaded.source;  // what a PyTorch file held
  if (json) {
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("%s %s perplexity %.2f (loss %.4f, %lld targets, %.1f s, %.0f tokens/s)\n",
                model_path.c_str(), split.c_str(), r.perplexity, r.loss,
                static_cast<long long>(r.tokens), r.seconds, r.tokens_per_s);
    if (corpus.tokenizer != "word")
      std::printf(
          "perplexity %.2f per token (%s), %.2f per word (word-normalised, %.3f tokens "
          "per word)\n",
          r.perplexity, corpus.tokenizer.substr(0, 16).c_str(), j["word_perplexity"].get<double>(),
          corpus.tokens_per_word(s));
  }
  return 0;
}

}  // namespace lmquant::cli
