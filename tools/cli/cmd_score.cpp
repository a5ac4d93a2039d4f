// lmquant score: sentence log-probabilities as JSON lines, streaming (one line in, one line out).
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "engine/int8_engine.h"
#include "lm/score.h"
#include "quant/quantized_io.h"
#include "util/sha256.h"

namespace lmquant::cli {

int cmd_score(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string model_path, quantized, input = "-", engine = "float";
  int64_t batch_size = 1;
  bool token_logprobs = false;
  po::options_description desc;
  po::options_description m("Scoring");
  // clang-format off
  m.add_options()
    ("model", po::value(&model_path)->required(),
     "model file (.lmq, a PyTorch file, or a quantized file)")
    ("quantized", po::value(&quantized)->default_value(""),
     "score with this quantized file (from quantize --save-quantized) made from --model")
    ("input", po::value(&input)->default_value(input), "sentences, one per line ('-': stdin)")
    ("engine", po::value(&engine)->default_value(engine),
     "float, or int8: run the quantized/packed model's embedding, LSTM and decoder from its "
     "int8 codes (see lmquant eval --help)")
    ("batch-size", po::value(&batch_size)->default_value(batch_size),
     "sentences scored together (1: each line answered as it arrives; more is faster, and the "
     "Python module's score(batch_size=) gives the same numbers for the same batches)")
    ("token-logprobs", po::bool_switch(&token_logprobs)->default_value(false),
     "also print each target's log-probability (\"token_logprobs\", the last one <eos>)");
  // clang-format on
  desc.add(m)
      .add(data_options(common))
      .add(model_file_options(common))
      .add(compute_options(common));
  po::variables_map vm;
  if (!parse("score", "--model M [--quantized Q] [--input FILE] < sentences", desc, args, vm))
    return 0;
  if (batch_size < 1) throw std::invalid_argument("--batch-size: give a positive count");
  const auto device = setup_compute(common);
  const EngineKind kind = with_flag("--engine", [&] { return parse_engine(engine); });
  if (kind == EngineKind::kInt8 && !device.is_cpu())
    throw std::invalid_argument("--engine int8 runs on the CPU; pass --device cpu");
  // The file to score with: --quantized when given (it must come from --model), else --model.
  // The int8 engine runs from the codes: no float copy of a quantized matrix is made.
  const bool separate = !quantized.empty();
  const std::string& path = separate ? quantized : model_path;
  QuantizedFile file;
  if (kind == EngineKind::kInt8)
    file = with_flag(separate ? "--quantized" : "--model",
                     [&] { return read_quantized(path, device, false); });
  else
    file.loaded = load_model_file(path, common, device);
  if (separate) {
    if (file.loaded.format != "quantized" && file.loaded.format != "packed")
      throw std::runtime_error("--quantized " + quantized +
                               " is not a quantized model file "
                               "(make one with lmquant quantize --save-quantized)");
    if (file.loaded.meta.value("source_sha256", "") != sha256_file(model_path))
      throw std::runtime_error("--quantized " + quantized + " was made from another model than " +
                               model_path + " (" + file.loaded.meta.value("source_path", "?") +
                               ")");
  }
  LoadedModel& loaded = file.loaded;
  const TokenizerSpec spec = resolve_tokenizer(common, &loaded);
  SentenceScorer scorer = [&] {
    try {
      return scorer_for(loaded, spec, [&] { return load_corpus(common, &loaded).vocab; });
    } catch (const TokenizerMismatch& e) {
      throw std::runtime_error(with_tokenizer_hint(e));
    }
  }();
  if (kind == EngineKind::kInt8)
    scorer.set_engine(with_flag("--engine", [&] { return int8_engine(file, true, true); }));
  std::vector<std::string> batch;
  auto flush = [&] {
    const std::vector<std::string_view> views(batch.begin(), batch.end());
    const auto scores = scorer.score_batch(views, token_logprobs);
    for (size_t i = 0; i < batch.size(); ++i) {
      const SentenceScore& s = scores[i];
      nlohmann::json j{{"text", batch[i]},
                       {"tokens", s.tokens},
                       {"words", s.words},
                       {"logprob", s.logprob},
                       {"perplexity", s.perplexity},
                       {"word_perplexity", s.word_perplexity},
                       {"oov", s.oov}};
      if (token_logprobs) {
        const auto lp = s.token_logprobs.contiguous();
        j["token_logprobs"] =
            std::vector<double>(lp.data_ptr<double>(), lp.data_ptr<double>() + lp.numel());
      }
      std::cout << j.dump() << '\n';
    }
    std::cout.flush();
    batch.clear();
  };
  const int64_t lines = for_each_input_line(input, [&](const std::string& line) {
    batch.push_back(line);
    if (static_cast<int64_t>(batch.size()) == batch_size) flush();
  });
  if (!batch.empty()) flush();
  if (lines == 0)
    throw std::runtime_error(
        "empty input: no sentences to score (give one sentence per line on "
        "stdin or with --input FILE)");
  return 0;
}

}  // namespace lmquant::cli
