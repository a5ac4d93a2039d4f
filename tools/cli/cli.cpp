#include "cli.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "quant/quantized_io.h"
#include "util/runtime.h"

namespace lmquant::cli {

po::options_description data_options(CommonOptions& o) {
  po::options_description d("Data");
  // clang-format off
  d.add_options()
    ("corpus", po::value(&o.corpus)->default_value(o.corpus),
     "corpus: a registered name (wikitext2, ptb) or a directory holding train.txt, valid.txt, test.txt")
    ("data-dir", po::value(&o.data_dir)->default_value(""),
     "folder holding wikitext-2/{train,valid,test}.txt; else $LMQUANT_DATA, else the cache "
     "($XDG_CACHE_HOME/lmquant or ~/.cache/lmquant), else download into the cache")
    ("allow-unverified", po::bool_switch(&o.allow_unverified)->default_value(false),
     "use corpus files whose SHA-256 differs from the registry's (with a warning)")
    ("no-download", po::bool_switch(&o.no_download)->default_value(false),
     "never download; fail when the corpus is not on disk")
    ("tokenizer", po::value(&o.tokenizer)->default_value(o.tokenizer),
     "word (pytorch/examples' word ids), spm:PATH (a sentencepiece .model, see `lmquant tokenizer "
     "train`), or auto: the model's own (its checkpoint names the .model file), else word")
    ("vocab", po::value(&o.vocab)->default_value(""),
     "the model's own vocabulary (one token per line, id = line - 1; e.g. fastai's itos "
     "written one per line) instead of the one built from the corpus: words it lacks map to its "
     "<unk> (or xxunk); word tokenizer only");
  // clang-format on
  return d;
}

po::options_description model_file_options(CommonOptions& o) {
  po::options_description d("Model file");
  // clang-format off
  d.add_options()
    ("model-format", po::value(&o.model_format)->default_value(o.model_format),
     "a PyTorch file's layout: auto (from its keys), word-lm (pytorch/examples, nn.LSTM with or "
     "without proj_size), awd-lstm (salesforce/awd-lstm-lm), fastai (AWD_LSTM)");
  // clang-format on
  return d;
}

LoadedModel load_model_file(const std::string& path, const CommonOptions& o,
                            const torch::Device& device) {
  const ImportFormat f =
      with_flag("--model-format", [&] { return parse_import_format(o.model_format); });
  return load_any_model(path, device, f);
}

po::options_description compute_options(CommonOptions& o) {
  po::options_description d("Compute");
  // clang-format off
  d.add_options()
    ("threads", po::value(&o.threads)->default_value(0), "LibTorch threads (0: all cores)")
    ("device", po::value(&o.device)->default_value(o.device), "auto, cpu or cuda")
    ("quiet,q", po::bool_switch(&o.quiet)->default_value(false), "no progress bars or notes");
  // clang-format on
  return d;
}

bool parse(const std::string& command, const std::string& usage, po::options_description& desc,
           const std::vector<std::string>& args, po::variables_map& vm) {
  desc.add_options()("help,h", "show this help");
  po::store(po::command_line_parser(args).options(desc).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: lmquant " << command << " " << usage << "\n\n" << desc << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

void check_writable_dir(const std::string& flag, const std::string& path) {
  const std::filesystem::path parent = std::filesystem::absolute(path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec || ::access(parent.c_str(), W_OK) != 0)
    throw std::runtime_error(flag + " " + path + ": " + parent.string() +
                             " is not writable; choose another " + flag);
}

void note(const std::string& line) { std::cerr << line << std::endl; }

torch::Device setup_compute(const CommonOptions& o) {
  if (o.threads < 0)
    throw std::invalid_argument("--threads " + std::to_string(o.threads) +
                                ": give 0 (all cores) or a positive count");
  configure_threads(o.threads);
  const std::string warning = blas_warning();
  if (!warning.empty()) note(warning);
  return with_flag("--device", [&] { return parse_device(o.device); });
}

Progress progress_bar(bool quiet) {
  if (quiet || !::isatty(STDERR_FILENO)) return {};
  struct State {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last;
    std::string label;
  };
  auto st = std::make_shared<State>();
  return [st](const ProgressEvent& e) {
    const auto now = std::chrono::steady_clock::now();
    if (e.label != st->label) {
      st->label = e.label;
      st->start = now;
    }
    if (e.finished) {
      std::fprintf(stderr, "\r\033[K");
      return;
    }
    if (now - st->last < std::chrono::milliseconds(200)) return;
    st->last = now;
    const double secs = std::chrono::duration<double>(now - st->start).count();
    const double rate = secs > 0 ? e.done / secs : 0;
    char eta[32] = "?";
    if (e.total > 0 && rate > 0) {
      const int left = static_cast<int>((e.total - e.done) / rate);
      std::snprintf(eta, sizeof eta, "%d:%02d", left / 60, left % 60);
    }
    const double frac = e.total > 0 ? std::min(1.0, static_cast<double>(e.done) / e.total) : 0;
    const int width = 24, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %.0f %s/s ETA %s %s", e.label.c_str(),
                 bar.c_str(), frac * 100, rate, e.unit.c_str(), eta, e.detail.c_str());
    std::fflush(stderr);
  };
}

int64_t for_each_input_line(const std::string& input,
                            const std::function<void(const std::string&)>& on_line) {
  std::ifstream file;
  if (input != "-") {
    file.open(input);
    if (!file) throw std::runtime_error("--input " + input + ": cannot read the file");
  }
  std::istream& in = input == "-" ? std::cin : file;
  std::string line;
  int64_t lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    on_line(line);
  }
  return lines;
}

TokenizerSpec resolve_tokenizer(const CommonOptions& o, const LoadedModel* model) {
  const TokenizerSpec spec = o.tokenizer != "auto" ? parse_tokenizer(o.tokenizer)
                             : model               ? tokenizer_of(*model)
                                                   : TokenizerSpec{};
  return with_flag("--vocab", [&] { return with_vocab_file(spec, o.vocab); });
}

CorpusLocation locate(const CommonOptions& o) {
  CorpusOptions co;
  co.data_dir = o.data_dir;
  co.allow_unverified = o.allow_unverified;
  co.allow_download = !o.no_download;
  co.progress = progress_bar(o.quiet);
  CorpusLocation loc;
  try {
    loc = locate_corpus(o.corpus, co);
  } catch (const Interrupted&) {
    throw;
  } catch (const std::runtime_error& e) {
    // A folder that is not a corpus is named by the library; say which flag gave it.
    const std::string msg = e.what();
    if (msg.rfind(o.corpus + ": ", 0) == 0) throw std::runtime_error("--corpus " + msg);
    if (msg.find("a data directory") != std::string::npos)
      throw std::runtime_error(msg + " (pass the data directory with --data-dir DIR)");
    throw;
  }
  if (!loc.warning.empty()) note(loc.warning);
  return loc;
}

Corpus load_corpus(const CommonOptions& o, const LoadedModel* model) {
  const CorpusLocation loc = locate(o);
  const TokenizerSpec spec = resolve_tokenizer(o, model);
  if (spec.kind == TokenizerSpec::Kind::kSpm && !o.quiet) note("tokenizer: " + to_string(spec));
  Corpus corpus = spec.vocab_path.empty()
                      ? load_corpus(loc, spec)
                      : with_flag("--vocab", [&] { return load_corpus(loc, spec); });
  if (!corpus.vocab_path.empty() && !o.quiet &&
      corpus.train_oov + corpus.valid_oov + corpus.test_oov)
    note("--vocab " + corpus.vocab_path + ": words outside it, mapped to its unknown-word token: " +
         "train " + std::to_string(corpus.train_oov) + ", valid " +
         std::to_string(corpus.valid_oov) + ", test " + std::to_string(corpus.test_oov));
  if (model) {
    check_tokenizer_flag(*model, corpus.tokenizer, "the corpus");
    check_vocab_matches(*model, corpus.vocab);
  }
  return corpus;
}

std::string with_tokenizer_hint(const TokenizerMismatch& e) {
  return std::string(e.what()) + "; " +
         (e.expected == "word" ? "pass --tokenizer word"
                               : "pass --tokenizer spm:PATH with that .model file");
}

void check_tokenizer_flag(const LoadedModel& loaded, const std::string& tokenizer,
                          const std::string& what) {
  try {
    check_tokenizer_matches(loaded, tokenizer, what);
  } catch (const TokenizerMismatch& e) {
    throw std::runtime_error(with_tokenizer_hint(e));
  }
}

}  // namespace lmquant::cli
