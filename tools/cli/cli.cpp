#include "cli.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "util/runtime.h"

namespace lmquant::cli {

po::options_description data_options(CommonOptions& o) {
  po::options_description d("Data");
  // clang-format off
  d.add_options()
    ("corpus", po::value(&o.corpus)->default_value(o.corpus),
     "corpus: a registered name (wikitext2) or a directory holding train.txt, valid.txt, test.txt")
    ("data-dir", po::value(&o.data_dir)->default_value(""),
     "folder holding wikitext-2/{train,valid,test}.txt; else $LMQUANT_DATA, else the cache "
     "($XDG_CACHE_HOME/lmquant or ~/.cache/lmquant), else download into the cache")
    ("allow-unverified", po::bool_switch(&o.allow_unverified)->default_value(false),
     "use corpus files whose SHA-256 differs from the registry's (with a warning)")
    ("no-download", po::bool_switch(&o.no_download)->default_value(false),
     "never download; fail when the corpus is not on disk")
    ("tokenizer", po::value(&o.tokenizer)->default_value(o.tokenizer),
     "word (pytorch/examples' word ids), spm:PATH (a sentencepiece .model, see `lmquant tokenizer "
     "train`), or auto: the model's own (its checkpoint names the .model file), else word");
  // clang-format on
  return d;
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

std::vector<std::string> split_list(const std::string& s, const std::string& flag) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  if (out.empty()) throw std::invalid_argument(flag + ": give at least one value");
  return out;
}

double parse_number(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument((flag.empty() ? "" : flag + ": ") + "'" + text + "' is not a number");
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
  if (o.tokenizer != "auto") return parse_tokenizer(o.tokenizer);
  return model ? tokenizer_of(*model) : TokenizerSpec{};
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
  Corpus corpus = load_corpus(loc, spec);
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

po::options_description rounding_options(QuantConfig& q, RoundingFlags& f, bool list) {
  po::options_description o("Error-compensating rounding (GPTQ) and bits per matrix");
  // clang-format off
  o.add_options()
    ("rounding", po::value(&f.rounding)->default_value(f.rounding),
     list ? "comma list: nearest, gptq (compensates each rounding error with the inputs' "
            "Hessian, calibrated on train)"
          : "nearest, or gptq: compensate each rounding error with the inputs' Hessian, "
            "calibrated on train (--method gptq is the same as --rounding gptq)")
    ("calib-sequences", po::value(&q.calib_sequences)->default_value(q.calib_sequences),
     "gptq: calibration sequences of 35 train tokens (after a 35-token warm-up)")
    ("damp", po::value(&q.damp)->default_value(q.damp),
     "gptq: dampening lambda, H += lambda * mean(diag H) * I")
    ("gptq-order", po::value(&f.order)->default_value(f.order),
     "gptq: column order, diag (decreasing H_jj, chosen on valid) or natural")
    ("gptq-decoder", po::bool_switch(&f.decoder),
     "gptq: also compensate the decoder (off: on wt2-lstm200 valid it raised perplexity; the "
     "decoder is then rounded to nearest)")
    ("fisher-decoder", po::bool_switch(&q.fisher_decoder),
     "gptq: compensate the decoder against the output distribution instead of its logits: each "
     "row with its own Hessian, the softmax Fisher sum_t p_tv (1 - p_tv) h_t h_t^T "
     "(src/quant/decoder_fisher.h)")
    ("grid", po::value(&f.grid)->default_value(f.grid),
     "quantization grid: midtread (a zero level; 2^b - 1 levels, ternary at 2 bits) or midrise "
     "(all 2^b levels, no zero; 2..7 bits)")
    ("half-scales", po::bool_switch(&q.half_scales),
     "store row, gate and tensor steps as float16 (16 bits each, as group steps already are)")
    ("alpha-by-output", po::bool_switch(&q.alpha_by_output),
     "gptq: choose each row's clip threshold among 0.5..1.05 x the clip rule's by the output "
     "error left after compensation, (w - w^)^T H (w - w^), instead of by the weights alone "
     "(needs --granularity row or group:G)")
    ("rotate", po::bool_switch(&q.rotate),
     "incoherence processing: quantize each matrix as W Q with Q a random rotation of its input "
     "side (one per input width; QuIP), the function W^ Q^T; gptq sees Q^T H Q (not with ocs)")
    ("rotation-seed", po::value(&q.rotation_seed)->default_value(q.rotation_seed),
     "--rotate: the seed Q is drawn from (each --repeat draws another rotation)")
    ("gptq-embedding", po::bool_switch(&f.embedding),
     "gptq: round each embedding row against what it feeds, min ||W_ih (e - e^)||^2 (GPTQ with "
     "H = W_ih^T W_ih of layer 0) instead of to nearest")
    ("matrix-bits", po::value(&f.matrix_bits)->default_value(""),
     "bit widths for single matrices overriding --bits, e.g. embedding=4 (names: see inspect)")
    ("matrix-granularity", po::value(&f.matrix_granularity)->default_value(""),
     "scale granularity for single matrices overriding --granularity, e.g. "
     "input.l0=group:64,decoder=row")
    ("matrix-row-budget", po::value(&f.matrix_row_budget)->default_value(""),
     "--row-widths: row budgets for single vocabulary matrices overriding --row-budget, e.g. "
     "embedding=2.2,decoder=2.8")
    ("row-widths", po::value(&f.row_widths)->default_value(""),
     "bits per row for the embedding and decoder: the widths rows may take, e.g. 2,3,4,8 "
     "(with --row-budget; needs --granularity row or group:G; calibrated on train)")
    ("row-budget", po::value(&q.row_budget)->default_value(0.0),
     "--row-widths: the mean code width of each vocabulary matrix, e.g. 2.5")
    ("row-sensitivity", po::value(&f.row_sensitivity)->default_value(f.row_sensitivity),
     "--row-widths: how a row's cost at each width is measured: output (the decoder by its "
     "softmax Fisher on calibration data, the embedding by frequency x ||W_ih error||^2) or "
     "frequency (train frequency x squared error)");
  // clang-format on
  return o;
}

void apply_rounding_flags(QuantConfig& q, const RoundingFlags& f) {
  q.gptq_order = with_flag("--gptq-order", [&] { return parse_gptq_order(f.order); });
  q.gptq_decoder = f.decoder;
  q.gptq_embedding = f.embedding;
  q.grid = with_flag("--grid", [&] { return parse_grid(f.grid); });
  q.row_sensitivity =
      with_flag("--row-sensitivity", [&] { return parse_row_sensitivity(f.row_sensitivity); });
  if (!f.row_widths.empty())
    for (const auto& item : split_list(f.row_widths, "--row-widths")) {
      const double b = parse_number("--row-widths", item);
      if (b != std::floor(b))
        throw std::invalid_argument("--row-widths: '" + item + "' is not a whole number of bits");
      q.row_widths.push_back(static_cast<int>(b));
    }
  // NAME=VALUE items of a per-matrix flag.
  auto items = [](const std::string& list, const std::string& flag, const std::string& example) {
    std::vector<std::pair<std::string, std::string>> out;
    if (list.empty()) return out;
    for (const auto& item : split_list(list, flag)) {
      const auto eq = item.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
        throw std::invalid_argument(flag + ": '" + item + "' is not NAME=VALUE (e.g. " + example +
                                    ")");
      out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    }
    return out;
  };
  for (const auto& [name, v] : items(f.matrix_bits, "--matrix-bits", "embedding=4")) {
    const double b = parse_number("--matrix-bits", v);
    if (b != std::floor(b))
      throw std::invalid_argument("--matrix-bits: '" + name + "=" + v +
                                  "' needs a whole number of bits");
    q.matrix_bits[name] = static_cast<int>(b);
  }
  for (const auto& [name, v] :
       items(f.matrix_granularity, "--matrix-granularity", "input.l0=group:64"))
    q.matrix_granularity[name] =
        with_flag("--matrix-granularity", [&] { return parse_granularity(v); });
  for (const auto& [name, v] : items(f.matrix_row_budget, "--matrix-row-budget", "embedding=2.2"))
    q.matrix_row_budget[name] = parse_number("--matrix-row-budget", v);
}

}  // namespace lmquant::cli
