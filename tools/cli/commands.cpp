// The subcommand table: name -> (function, one-line help). Each command lives in cmd_<name>.cpp.
#include "cli.h"

namespace lmquant::cli {

int cmd_corpus(const std::vector<std::string>& args);
int cmd_train(const std::vector<std::string>& args);
int cmd_eval(const std::vector<std::string>& args);
int cmd_quantize(const std::vector<std::string>& args);
int cmd_sweep(const std::vector<std::string>& args);
int cmd_report(const std::vector<std::string>& args);
int cmd_score(const std::vector<std::string>& args);
int cmd_inspect(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);
int cmd_tokenizer(const std::vector<std::string>& args);
int cmd_export(const std::vector<std::string>& args);

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"report", "the main job: compare float, clip rules and OCS at --bits; write a report", cmd_report},
      {"corpus", "locate, verify and tokenize a corpus; print its counts", cmd_corpus},
      {"train", "train an LSTM LM (pytorch/examples recipe)", cmd_train},
      {"eval", "perplexity of a model on a split", cmd_eval},
      {"quantize", "quantize a model (clip rules, OCS), evaluate, report", cmd_quantize},
      {"sweep", "quantize and evaluate a grid of configurations (resumable)", cmd_sweep},
      {"score", "log-probabilities of sentences (JSON lines), for NLP pipelines", cmd_score},
      {"inspect", "weight statistics per matrix; histogram before/after OCS", cmd_inspect},
      {"tokenizer", "train a sentencepiece model on a corpus, or encode text with one", cmd_tokenizer},
      {"export", "a model (float, quantized or packed) as an ONNX graph for ONNX Runtime", cmd_export},
      {"bench", "speed and memory benchmarks against baselines run beside them", cmd_bench},
  };
  return table;
}

}  // namespace lmquant::cli
