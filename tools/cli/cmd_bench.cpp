// lmquant bench: the benchmarks of src/experiment/bench.h.
#include <iostream>

#include "cli.h"
#include "experiment/bench.h"
#include "quant/quantized_io.h"

namespace lmquant::cli {

int cmd_bench(const std::vector<std::string>& args) {
  CommonOptions common;
  BenchOptions bo;
  std::string model_path, preset = "small";
  bool json = false;
  po::options_description desc;
  po::options_description b("Benchmark");
  // clang-format off
  b.add_options()
    ("what", po::value(&bo.what)->default_value(bo.what), "comma-separated: tokenize, eval, ceilings, engine, train, quant, gptq")
    ("model", po::value(&model_path)->default_value(""),
     "model to benchmark (default: a randomly initialised --preset model)")
    ("preset", po::value(&preset)->default_value(preset), "small (2x200) or medium (2x650)")
    ("eval-tokens", po::value(&bo.eval_tokens)->default_value(bo.eval_tokens),
     "test-split tokens evaluated per path")
    ("train-batches", po::value(&bo.train_batches)->default_value(bo.train_batches),
     "training batches per path (batch 20, bptt 35)")
    ("engine-bits", po::value(&bo.engine_bits)->default_value(bo.engine_bits),
     "engine: bits per weight of every matrix (2..8, per row) run by the int8 engine")
    ("json", po::bool_switch(&json)->default_value(false), "print one JSON object");
  // clang-format on
  desc.add(b)
      .add(data_options(common))
      .add(model_file_options(common))
      .add(compute_options(common));
  po::variables_map vm;
  if (!parse("bench", "[--what tokenize,eval,train] [--model M]", desc, args, vm)) return 0;
  with_flag("--what", [&] {
    bo.validate();
    return 0;
  });
  const LstmLmConfig shape = with_flag("--preset", [&] { return preset_config(preset); });
  const auto device = setup_compute(common);
  common.quiet = true;
  const BenchResult r = run_bench(
      bo, [&] { return load_corpus(common); },
      [&](const Corpus& corpus) {
        if (!model_path.empty()) return load_model_file(model_path, common, device).model;
        LstmLmConfig c = shape;  // a random model of the preset's size
        c.vocab = corpus.vocab.size();
        torch::manual_seed(1);
        LstmLm m(c);
        m->to(device);
        return m;
      });
  std::cout << (json ? r.json.dump() + "\n" : r.text);
  return 0;
}

}  // namespace lmquant::cli
