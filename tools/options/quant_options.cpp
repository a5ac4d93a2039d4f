#include "quant_options.h"

#include <cmath>

namespace lmquant::options {
namespace {

// clang-format off
// Each option once: (name in the one form, name in the list form, help). A list name "" means
// the option has no list form (it is shared by every cell of a grid).
struct Spec {
  const char* one;
  const char* list;
  const char* help;
};
const Spec kBits{"bits", "bits", "bit width, 2..16 (list: the grid's widths)"};
const Spec kClip{"clip", "clips",
    "clip rule: max, fixed:C, mse, aciq, kl, percentile:P (list: the rules compared)"};
const Spec kGranularity{"granularity", "granularity",
    "scales: tensor, row, gate or group:G (one scale per G weights of a row)"};
const Spec kTargets{"targets", "targets",
    "all, or a comma list of embedding, input, recurrent, decoder"};
const Spec kMethod{"method", "methods", "clip, ocs, or gptq (clip with --rounding gptq)"};
const Spec kExpandRatio{"expand-ratio", "expand-ratios",
    "OCS expand ratio r in [0, 1]: ceil(r * in) splits per matrix"};
const Spec kGridAware{"ocs-grid-aware", "grid-aware",
    "OCS: split w into w/2 - s/4 and w/2 + s/4 instead of two halves (the quantization-aware "
    "split of Zhao et al.'s code; list: off, on)"};
const Spec kRounding{"rounding", "rounding",
    "nearest, or gptq: compensate each rounding error with the inputs' Hessian, calibrated on "
    "train (--method gptq is the same as --rounding gptq)"};
// clang-format on

const char* name_of(const Spec& s, Form form) { return form == Form::kList ? s.list : s.one; }

void add_text(po::options_description& d, const Spec& s, Form form, std::string& value) {
  d.add_options()(name_of(s, form), po::value(&value)->default_value(value), s.help);
}

}  // namespace

po::options_description quantization_options(QuantFlags& f, Form form) {
  po::options_description d("Quantization");
  for (auto [spec, value] :
       {std::pair{&kBits, &f.bits}, std::pair{&kClip, &f.clip},
        std::pair{&kGranularity, &f.granularity}, std::pair{&kTargets, &f.targets},
        std::pair{&kMethod, &f.method}, std::pair{&kExpandRatio, &f.expand_ratio}})
    add_text(d, *spec, form, *value);
  if (form == Form::kList)
    add_text(d, kGridAware, form, f.grid_aware);
  else
    d.add_options()(kGridAware.one, po::bool_switch(&f.ocs_grid_aware), kGridAware.help);
  // clang-format off
  d.add_options()
    ("alpha-on-original", po::bool_switch(&f.alpha_on_original),
     "OCS: choose the clip threshold on the original matrix instead of the split one")
    ("matrix-bits", po::value(&f.matrix_bits)->default_value(f.matrix_bits),
     "bit widths for single matrices overriding --bits, e.g. embedding=4 (names: see inspect)")
    ("matrix-granularity", po::value(&f.matrix_granularity)->default_value(f.matrix_granularity),
     "scale granularity for single matrices overriding --granularity, e.g. "
     "input.l0=group:64,decoder=row");
  // clang-format on
  return d;
}

po::options_description rounding_options(QuantFlags& f, Form form) {
  po::options_description d("Rounding: what each matrix's codes minimise (src/quant/objective.h)");
  add_text(d, kRounding, form, f.rounding);
  // clang-format off
  d.add_options()
    ("calib-sequences", po::value(&f.calib_sequences)->default_value(f.calib_sequences),
     "gptq, row widths: calibration sequences of 35 train tokens (after a 35-token warm-up)")
    ("damp", po::value(&f.damp)->default_value(f.damp),
     "gptq: dampening lambda, H += lambda * mean(diag H) * I")
    ("gptq-order", po::value(&f.gptq_order)->default_value(f.gptq_order),
     "gptq: column order, diag (decreasing H_jj, chosen on valid) or natural")
    ("gptq-decoder", po::bool_switch(&f.gptq_decoder),
     "gptq: also compensate the decoder against its logits (off: on wt2-lstm200 valid it raised "
     "perplexity; the decoder is then rounded to nearest)")
    ("fisher-decoder", po::bool_switch(&f.fisher_decoder),
     "gptq: compensate the decoder against the output distribution instead of its logits: each "
     "row with its own Hessian, the softmax Fisher sum_t p_tv (1 - p_tv) h_t h_t^T "
     "(src/quant/decoder_fisher.h)")
    ("gptq-embedding", po::bool_switch(&f.gptq_embedding),
     "gptq: round each embedding row against what it feeds, min ||W_ih (e - e^)||^2 (GPTQ with "
     "H = W_ih^T W_ih of layer 0) instead of to nearest")
    ("alpha-by-output", po::bool_switch(&f.alpha_by_output),
     "gptq: choose each row's clip threshold among 0.5..1.05 x the clip rule's by the output "
     "error left after compensation, (w - w^)^T H (w - w^) (needs --granularity row or group:G)")
    ("refit-decoder-bias", po::bool_switch(&f.refit_decoder_bias),
     "once every matrix is quantized, refit the decoder's float bias to the float model's output "
     "distribution on the calibration slice (min mean KL, iterative scaling; the size does not "
     "change; src/quant/bias_refit.h)")
    ("grid", po::value(&f.grid)->default_value(f.grid),
     "quantization grid: midtread (a zero level; 2^b - 1 levels, ternary at 2 bits) or midrise "
     "(all 2^b levels, no zero; 2..7 bits)")
    ("half-scales", po::bool_switch(&f.half_scales),
     "store row, gate and tensor steps as float16 (16 bits each, as group steps already are)")
    ("rotate", po::bool_switch(&f.rotate),
     "incoherence processing: quantize each matrix as W Q with Q a random rotation of its input "
     "side (one per input width; QuIP), the function W^ Q^T; gptq sees Q^T H Q (not with ocs)")
    ("rotation-seed", po::value(&f.rotation_seed)->default_value(f.rotation_seed),
     "--rotate: the seed Q is drawn from (each --repeat draws another rotation)");
  // clang-format on
  return d;
}

po::options_description row_width_options(QuantFlags& f) {
  po::options_description d("Bits per row of the vocabulary matrices (src/quant/row_widths.h)");
  // clang-format off
  d.add_options()
    ("row-widths", po::value(&f.row_widths)->default_value(f.row_widths),
     "the widths the embedding's and decoder's rows may take, e.g. 0,1,2,3,4,7 (0: the row is "
     "dropped to zero; with --row-budget or --bits-per-weight; needs --granularity row or "
     "group:G; calibrated on train)")
    ("row-budget", po::value(&f.row_budget)->default_value(f.row_budget),
     "--row-widths: the mean code width of each vocabulary matrix, e.g. 2.2")
    ("bits-per-weight", po::value(&f.bits_per_weight)->default_value(f.bits_per_weight),
     "--row-widths: the whole model's size instead of a row budget: the row budget is solved so "
     "that the model takes T bits per weight as the record counts them (codes, width tags, "
     "scales, the float rest); an unreachable T is an error giving the reachable range")
    ("row-sensitivity", po::value(&f.row_sensitivity)->default_value(f.row_sensitivity),
     "--row-widths: how a row's cost at each width is measured: output (the decoder by its "
     "softmax Fisher on calibration data, the embedding by frequency x ||W_ih error||^2) or "
     "frequency (train frequency x squared error)")
    ("matrix-row-budget", po::value(&f.matrix_row_budget)->default_value(f.matrix_row_budget),
     "--row-widths: row budgets for single vocabulary matrices overriding --row-budget, e.g. "
     "embedding=2.2,decoder=2.8")
    ("row-alpha-factors", po::value(&f.row_alpha_factors)->default_value(f.row_alpha_factors),
     "--row-widths: choose each vocabulary row's clip threshold at each width among these "
     "multiples of the clip rule's by the row's own cost there (the cost its width is allocated "
     "by), e.g. 0.8,0.9,1,1.1 (each factor one more quantization of the vocabulary matrices; "
     "src/quant/row_alpha.h)");
  // clang-format on
  return d;
}

po::options_description candidate_options(QuantFlags& f) {
  po::options_description d("Candidates");
  add_text(d, kBits, Form::kOne, f.bits);
  for (auto [spec, value] :
       {std::pair{&kClip, &f.clip}, std::pair{&kGranularity, &f.granularity},
        std::pair{&kRounding, &f.rounding}, std::pair{&kExpandRatio, &f.expand_ratio}})
    add_text(d, *spec, Form::kList, *value);
  add_text(d, kTargets, Form::kOne, f.targets);
  return d;
}

namespace {

int whole_bits(const std::string& flag, const std::string& text) {
  const double b = parse_number(flag, text);
  if (b != std::floor(b) || std::abs(b) > 1e6)
    throw std::invalid_argument(flag + ": '" + text + "' is not a whole number of bits");
  return static_cast<int>(b);
}

// Everything but the grid's axes: what every cell (or the one configuration) shares.
QuantConfig shared_settings(const QuantFlags& f) {
  QuantConfig q;
  q.targets = with_flag("--targets", [&] { return parse_targets(f.targets); });
  q.alpha_on_original = f.alpha_on_original;
  q.calib_sequences = f.calib_sequences;
  q.damp = f.damp;
  q.gptq_order = with_flag("--gptq-order", [&] { return parse_gptq_order(f.gptq_order); });
  q.gptq_decoder = f.gptq_decoder;
  q.fisher_decoder = f.fisher_decoder;
  q.gptq_embedding = f.gptq_embedding;
  q.alpha_by_output = f.alpha_by_output;
  q.refit_decoder_bias = f.refit_decoder_bias;
  q.grid = with_flag("--grid", [&] { return parse_grid(f.grid); });
  q.half_scales = f.half_scales;
  q.rotate = f.rotate;
  q.rotation_seed = f.rotation_seed;
  q.row_sensitivity =
      with_flag("--row-sensitivity", [&] { return parse_row_sensitivity(f.row_sensitivity); });
  if (!f.row_widths.empty())
    for (const auto& item : split_list(f.row_widths, "--row-widths"))
      q.row_widths.push_back(whole_bits("--row-widths", item));
  if (!f.row_alpha_factors.empty())
    for (const auto& item : split_list(f.row_alpha_factors, "--row-alpha-factors"))
      q.row_alpha_factors.push_back(parse_number("--row-alpha-factors", item));
  q.row_budget = f.row_budget;
  q.bits_per_weight = f.bits_per_weight;
  for (const auto& [name, v] : name_value_items(f.matrix_bits, "--matrix-bits", "embedding=4"))
    q.matrix_bits[name] = whole_bits("--matrix-bits " + name, v);
  for (const auto& [name, v] :
       name_value_items(f.matrix_granularity, "--matrix-granularity", "input.l0=group:64"))
    q.matrix_granularity[name] =
        with_flag("--matrix-granularity", [&] { return parse_granularity(v); });
  for (const auto& [name, v] :
       name_value_items(f.matrix_row_budget, "--matrix-row-budget", "embedding=2.2"))
    q.matrix_row_budget[name] = parse_number("--matrix-row-budget", v);
  return q;
}

}  // namespace

QuantConfig config_of(const QuantFlags& f) {
  QuantConfig q = shared_settings(f);
  q.bits = whole_bits("--bits", f.bits);
  q.clip = with_flag("--clip", [&] { return ClipRule::parse(f.clip); });
  q.granularity = with_flag("--granularity", [&] { return parse_granularity(f.granularity); });
  std::string method = f.method, rounding = f.rounding;
  if (method == "gptq") method = "clip", rounding = "gptq";
  q.method = with_flag("--method", [&] { return parse_method(method); });
  if (q.method == Method::kFloat) throw std::invalid_argument("--method: use clip, ocs or gptq");
  q.rounding = with_flag("--rounding", [&] { return parse_rounding(rounding); });
  const double ratio = parse_number("--expand-ratio", f.expand_ratio);
  if (q.method != Method::kOcs && (ratio != 0 || f.ocs_grid_aware || f.alpha_on_original))
    throw std::invalid_argument(
        "--expand-ratio, --ocs-grid-aware and --alpha-on-original apply to --method ocs only");
  q.expand_ratio = ratio;
  q.grid_aware = f.ocs_grid_aware;
  return q;
}

SweepGrid grid_of(const QuantFlags& f) {
  SweepGrid g;
  auto number = [](const std::string& x) { return parse_number("", x); };
  g.bits =
      parse_list<int>("--bits", f.bits, [](const std::string& x) { return whole_bits("", x); });
  g.methods = parse_list<Method>("--methods", f.method, parse_method);
  g.clips = parse_list<ClipRule>("--clips", f.clip, ClipRule::parse);
  g.granularities = parse_list<Granularity>("--granularity", f.granularity, parse_granularity);
  g.expand_ratios = parse_list<double>("--expand-ratios", f.expand_ratio, number);
  g.grid_aware = parse_list<bool>("--grid-aware", f.grid_aware, [](const std::string& x) {
    if (x != "on" && x != "off") throw std::invalid_argument("'" + x + "': valid values: off, on");
    return x == "on";
  });
  g.roundings = parse_list<Rounding>("--rounding", f.rounding, parse_rounding);
  g.base = shared_settings(f);
  g.targets = g.base.targets;
  g.cells();  // validated; messages name the setting and value
  return g;
}

void set_candidates(const QuantFlags& f, MainJobOptions& job) {
  auto number = [](const std::string& x) { return parse_number("", x); };
  job.bits = whole_bits("--bits", f.bits);
  job.targets = with_flag("--targets", [&] { return parse_targets(f.targets); });
  job.clips = parse_list<ClipRule>("--clips", f.clip, ClipRule::parse);
  job.granularities = parse_list<Granularity>("--granularity", f.granularity, parse_granularity);
  job.roundings = parse_list<Rounding>("--rounding", f.rounding, parse_rounding);
  job.expand_ratios = parse_list<double>("--expand-ratios", f.expand_ratio, number);
}

namespace {

po::options_description one_form_groups(QuantFlags& f) {
  po::options_description d;
  d.add(quantization_options(f, Form::kOne))
      .add(rounding_options(f, Form::kOne))
      .add(row_width_options(f));
  return d;
}

}  // namespace

QuantConfig config_of_args(const std::vector<std::string>& args) {
  QuantFlags f;
  auto d = one_form_groups(f);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(d).run(), vm);
  po::notify(vm);
  QuantConfig q = config_of(f);
  q.validate();  // its messages name the setting and value
  return q;
}

std::vector<std::string> one_form_option_names() {
  QuantFlags f;
  std::vector<std::string> out;
  const auto groups = one_form_groups(f);  // alive while its options are read
  for (const auto& o : groups.options()) out.push_back(o->long_name());
  return out;
}

}  // namespace lmquant::options
