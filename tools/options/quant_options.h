// The quantization settings as command-line options, each defined once (name, help, default,
// where its value goes) and grouped by concern:
//   quantization  --bits --clip --granularity --targets --method --expand-ratio
//                 --ocs-grid-aware --alpha-on-original --matrix-bits --matrix-granularity
//   rounding      --rounding --calib-sequences --damp --gptq-order --gptq-decoder
//                 --fisher-decoder --gptq-embedding --alpha-by-output --grid --half-scales
//                 --rotate --rotation-seed
//   row widths    --row-widths --row-budget --bits-per-weight --row-sensitivity
//                 --matrix-row-budget --row-alpha-factors
// In two forms: one value each (`lmquant quantize`, Python's Model.quantize keywords), or comma
// lists for the axes of a grid (`lmquant sweep`: --bits, --clips, --granularity, --methods,
// --expand-ratios, --grid-aware, --rounding; the main job: its candidates). The values are kept
// as text until config_of / grid_of / the main job parse them, so every error names its flag.
#pragma once
#include <boost/program_options.hpp>
#include <map>
#include <string>
#include <vector>

#include "experiment/main_job.h"
#include "experiment/sweep.h"
#include "flags.h"
#include "quant/quant_config.h"

namespace lmquant::options {

namespace po = boost::program_options;

enum class Form { kOne, kList };

struct QuantFlags {
  // Quantization (list form: bits, clip, granularity, method, expand_ratio, grid_aware lists).
  std::string bits = "4";
  std::string clip = "max";
  std::string granularity = "tensor";
  std::string targets = "all";
  std::string method = "clip";
  std::string expand_ratio = "0";
  std::string grid_aware = "off";  // list form only: off, on
  bool ocs_grid_aware = false;     // one form
  bool alpha_on_original = false;
  std::string matrix_bits, matrix_granularity;
  // Rounding (list form: rounding a list).
  std::string rounding = "nearest";
  int64_t calib_sequences = 512;
  double damp = 0.01;
  std::string gptq_order = "diag";
  bool gptq_decoder = false, fisher_decoder = false, gptq_embedding = false;
  bool alpha_by_output = false, half_scales = false, rotate = false, refit_decoder_bias = false;
  std::string grid = "midtread";
  uint64_t rotation_seed = 1;
  // Row widths.
  std::string row_widths, row_sensitivity = "output", matrix_row_budget, row_alpha_factors;
  double row_budget = 0, bits_per_weight = 0;
};

po::options_description quantization_options(QuantFlags& f, Form form);
po::options_description rounding_options(QuantFlags& f, Form form);
po::options_description row_width_options(QuantFlags& f);
// The main job's candidates: --bits (one), --clips, --granularity, --rounding, --expand-ratios
// (lists), --targets.
po::options_description candidate_options(QuantFlags& f);

// The configuration of one-form flags (errors name the flag); not yet validated, so that a
// command can complete it first (QuantConfig::validate names the setting).
QuantConfig config_of(const QuantFlags& f);
// The grid of list-form flags; every cell validated.
SweepGrid grid_of(const QuantFlags& f);
// The main job's candidate settings from candidate_options' flags.
void set_candidates(const QuantFlags& f, MainJobOptions& job);

// Parses `args` ("--bits", "4", "--rotate", ...) against the one-form groups and returns the
// configuration: Python's keywords run through here, so they are the CLI's options.
QuantConfig config_of_args(const std::vector<std::string>& args);
// The one-form options' names (without "--"), for Python's keyword check.
std::vector<std::string> one_form_option_names();

}  // namespace lmquant::options
