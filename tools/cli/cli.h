// Shared pieces of the lmquant CLI: option groups, the progress bar, and the steps every
// subcommand takes (threads, corpus, model). The library does the work; this only wires it.
#pragma once
#include <boost/program_options.hpp>
#include <functional>
#include <string>
#include <vector>

#include "corpus/corpus.h"
#include "experiment/main_job.h"
#include "lm/model_io.h"
#include "quant_options.h"
#include "util/interrupt.h"
#include "util/progress.h"

namespace lmquant::cli {

namespace po = boost::program_options;
// The option groups and flag parsing the commands share with Python (tools/options).
namespace options = lmquant::options;
using options::parse_list;
using options::parse_number;
using options::split_list;
using options::with_flag;

// A subcommand: its name, one-line help, and function(argv after the name) -> exit code.
struct Command {
  const char* name;
  const char* help;
  int (*run)(const std::vector<std::string>& args);
};
const std::vector<Command>& commands();

// Options every subcommand shares.
struct CommonOptions {
  std::string corpus = "wikitext2";
  std::string data_dir;
  bool allow_unverified = false;
  bool no_download = false;
  std::string tokenizer = "auto";
  std::string vocab;                  // --vocab: a vocabulary file that comes with the model
  std::string model_format = "auto";  // --model-format: a PyTorch file's layout
  int threads = 0;
  std::string device = "auto";
  bool quiet = false;
};
po::options_description data_options(CommonOptions& o);
po::options_description compute_options(CommonOptions& o);
po::options_description model_file_options(CommonOptions& o);
// load_any_model with --model-format applied (errors name the flag).
LoadedModel load_model_file(const std::string& path, const CommonOptions& o,
                            const torch::Device& device = torch::kCPU);

// Parses args against `desc`; prints help and returns false on --help. Unknown options throw.
bool parse(const std::string& command, const std::string& usage, po::options_description& desc,
           const std::vector<std::string>& args, po::variables_map& vm);

// Sets threads, reports the BLAS warning, returns the device.
torch::Device setup_compute(const CommonOptions& o);

// A progress bar on stderr (only when stderr is a terminal and not quiet).
Progress progress_bar(bool quiet);

// Locates (verifies, downloads) the corpus's files, with progress and warnings on stderr.
CorpusLocation locate(const CommonOptions& o);

// The tokenizer --tokenizer names; "auto" is the model's own (the word tokenizer, or the .model
// file its checkpoint names), or the word tokenizer without a model.
TokenizerSpec resolve_tokenizer(const CommonOptions& o, const LoadedModel* model);

// Locates and tokenizes the corpus (with the tokenizer above), with progress and warnings on
// stderr; with a model, checks that the model fits the corpus (check_corpus_matches).
Corpus load_corpus(const CommonOptions& o, const LoadedModel* model = nullptr);

// Calls on_line for each line of --input (a file, or stdin for "-"), streaming; returns the
// number of lines. Throws naming --input when the file cannot be read.
int64_t for_each_input_line(const std::string& input,
                            const std::function<void(const std::string&)>& on_line);

// A TokenizerMismatch's message with the --tokenizer to pass.
std::string with_tokenizer_hint(const TokenizerMismatch& e);
// check_tokenizer_matches, with the --tokenizer to pass added to the error.
void check_tokenizer_flag(const LoadedModel& loaded, const std::string& tokenizer,
                          const std::string& what);

// Throws naming the flag when `path`'s folder cannot be created or written (checked before the
// work whose result would land there).
void check_writable_dir(const std::string& flag, const std::string& path);

// Prints to stderr (log lines, never results).
void note(const std::string& line);

}  // namespace lmquant::cli
