// lmquant train: the pytorch/examples recipe, with presets, checkpoints and --resume.
#include <algorithm>
#include <iostream>

#include "cli.h"
#include "lm/train.h"
#include "util/interrupt.h"

namespace lmquant::cli {

int cmd_train(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string preset = "small", out, init, schedule, layer_hidden, proj;
  int64_t emb = 0, hidden = 0, layers = 2, seed = 1111;
  double dropout = -1;
  bool tied = false;
  TrainOptions t;
  po::options_description desc;
  po::options_description m("Model");
  // clang-format off
  m.add_options()
    ("preset", po::value(&preset)->default_value(preset),
     "small (200/200, dropout 0.2), medium (650/650, 0.5) or large (1500/1500, 0.65)")
    ("emb", po::value(&emb)->default_value(0), "embedding size (0: the preset's)")
    ("hidden", po::value(&hidden)->default_value(0), "hidden size (0: the preset's)")
    ("layers", po::value(&layers)->default_value(layers), "LSTM layers")
    ("layer-hidden", po::value(&layer_hidden),
     "each layer's cell size, e.g. 1150,1150,400 (AWD-LSTM's; sets --layers)")
    ("proj", po::value(&proj),
     "an LSTMP projection of each layer's output, e.g. 128 (every layer) or 0,128 (0: none)")
    ("dropout", po::value(&dropout)->default_value(-1), "dropout (-1: the preset's)")
    ("tied", po::bool_switch(&tied)->default_value(false), "tie embedding and decoder weights")
    ("seed", po::value(&seed)->default_value(seed), "random seed");
  po::options_description tr("Training");
  tr.add_options()
    ("out", po::value(&out)->required(), "best-model checkpoint path (.lmq); OUT.last is resumable")
    ("epochs", po::value(&t.epochs)->default_value(t.epochs), "epochs")
    ("lr", po::value(&t.lr)->default_value(t.lr), "initial learning rate (SGD)")
    ("clip", po::value(&t.clip)->default_value(t.clip), "gradient norm clip")
    ("batch", po::value(&t.batch)->default_value(t.batch), "training batch size")
    ("bptt", po::value(&t.bptt)->default_value(t.bptt), "truncated BPTT length")
    ("log-interval", po::value(&t.log_interval)->default_value(t.log_interval),
     "batches between log lines and resumable checkpoints")
    ("max-batches", po::value(&t.max_batches)->default_value(0),
     "stop each epoch after this many batches (0: all)")
    ("resume", po::bool_switch(&t.resume)->default_value(false), "continue from OUT.last")
    ("init", po::value(&init),
     "continue training this model (.lmq or a PyTorch file) instead of a new one: its shapes "
     "replace --preset/--emb/--hidden/--layers/--tied; its valid perplexity is the best so far")
    ("lr-schedule", po::value(&schedule),
     "one learning rate per epoch, e.g. 5,1.25 (sets --epochs; no lr /= 4 on a plateau)");
  // clang-format on
  desc.add(m)
      .add(tr)
      .add(data_options(common))
      .add(model_file_options(common))
      .add(compute_options(common));
  po::variables_map vm;
  if (!parse("train",
             "--out M.lmq [--preset small] [--epochs 3] [--resume]\n"
             "       lmquant train --init M --lr-schedule 5,1.25 --out M2.lmq",
             desc, args, vm))
    return 0;
  if (vm.count("lr-schedule")) {
    t.lr_schedule = with_flag("--lr-schedule", [&] { return parse_lr_schedule(schedule); });
    if (!vm["epochs"].defaulted() && t.epochs != static_cast<int64_t>(t.lr_schedule.size()))
      throw std::invalid_argument("--epochs " + std::to_string(t.epochs) + " and --lr-schedule " +
                                  schedule + " disagree: the schedule gives one rate per epoch");
    t.epochs = static_cast<int64_t>(t.lr_schedule.size());
  }
  if (!init.empty())
    for (const char* f : {"preset", "emb", "hidden", "layers", "tied", "layer-hidden", "proj"})
      if (vm.count(f) && !vm[f].defaulted())
        throw std::invalid_argument(std::string("--") + f +
                                    " with --init: the model's shapes come from --init's file");
  with_flag("--epochs/--batch/--bptt/--log-interval/--lr", [&] { validate(t); });
  const auto device = setup_compute(common);
  LstmLm model{nullptr};
  Corpus corpus;
  if (!init.empty()) {
    const LoadedModel loaded =
        with_flag("--init", [&] { return load_model_file(init, common, device); });
    corpus = load_corpus(common, &loaded);
    model = loaded.model;
    LstmLmConfig c = model->config();
    if (dropout >= 0)
      c.dropout = dropout;  // PyTorch files do not say; the preset's otherwise
    else if (loaded.format == "pytorch")
      c.dropout = preset_config(preset).dropout;
    model->set_dropout(c.dropout);
    t.from_trained = true;
    torch::manual_seed(static_cast<uint64_t>(seed));
  } else {
    LstmLmConfig c = with_flag("--preset", [&] { return preset_config(preset); });
    if (emb > 0) c.emb = emb;
    if (hidden > 0) c.hidden = hidden;
    if (dropout >= 0) c.dropout = dropout;
    c.layers = layers;
    c.tied = tied;
    if (vm.count("layer-hidden")) {
      if (!vm["layers"].defaulted() || hidden > 0)
        throw std::invalid_argument(
            "--layer-hidden gives every layer's size: leave out --layers and --hidden");
      const auto n =
          static_cast<int64_t>(std::count(layer_hidden.begin(), layer_hidden.end(), ',')) + 1;
      c.layers = n;
      c.layer_hidden =
          with_flag("--layer-hidden", [&] { return parse_layer_sizes(layer_hidden, n); });
      c.hidden = *std::max_element(c.layer_hidden.begin(), c.layer_hidden.end());
    }
    if (vm.count("proj"))
      c.layer_proj = with_flag("--proj", [&] { return parse_layer_sizes(proj, c.layers); });
    std::string flags =
        vm.count("layer-hidden") ? "--layer-hidden/--emb" : "--emb/--hidden/--layers";
    if (vm.count("proj")) flags += "/--proj";
    if (tied) flags += "/--tied";
    with_flag(flags, [&] {
      c.vocab = 1;  // the corpus gives it below; the sizes are checked before it is read
      c.validate();
    });
    corpus = load_corpus(common);
    c.vocab = corpus.vocab.size();
    torch::manual_seed(static_cast<uint64_t>(seed));
    model = LstmLm(c);
  }
  const LstmLmConfig& c = model->config();
  model->to(device);
  t.out = out;
  t.progress = progress_bar(common.quiet);
  if (!common.quiet) t.log = [](const std::string& l) { note(l); };
  if (!common.quiet)
    note("training " + c.describe() + " on " + corpus.location.name + " (" +
         std::to_string(corpus.train.numel()) + " tokens per epoch)");
  t.should_stop = [] { return interrupted(); };
  const std::string resume_hint = "; the last resumable state is " + out + ".last (at most " +
                                  std::to_string(t.log_interval) +
                                  " batches back): run the same command with --resume";
  TrainResult r;
  try {
    r = t.resume ? with_flag("--resume", [&] { return train(model, corpus, t); })
                 : train(model, corpus, t);
  } catch (const Interrupted& e) {
    throw Interrupted(e.what() + resume_hint);
  }
  if (r.stopped) throw Interrupted("interrupted during training" + resume_hint);
  if (t.from_trained)
    std::printf("valid perplexity %.2f at the start (%s); ", r.initial_valid_ppl, init.c_str());
  std::printf("best valid perplexity %.2f; train %.0f tokens/s; best model in %s\n",
              r.best_valid_ppl, r.train_tokens_per_s, out.c_str());
  return 0;
}

}  // namespace lmquant::cli
