#include "quant/quantize_model.h"

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

#include "lm/matrices.h"
#include "quant/bias_refit.h"
#include "quant/decoder_fisher.h"
#include "quant/objective.h"
#include "quant/prepared_matrix.h"
#include "quant/rounding.h"
#include "quant/row_width_rounding.h"
#include "quant/tied_objective.h"
#include "util/runtime.h"

namespace lmquant {
namespace {

using Stage = std::vector<const MatrixPlan*>;

// The order matrices are quantized in. Without compensation, the table's, one matrix a stage.
// With it, the order the data flows, each stage's calibration inputs collected from the model
// with the stages before it already quantized: the vocabulary lookup (the embedding, or the tied
// matrix), then each layer's W_ih and W_hh (compensated as one matrix) and its projection W_hr
// (an LSTMP layer's, on r_t with W_ih and W_hh already quantized), then the decoder.
std::vector<Stage> stages_of(const std::vector<MatrixPlan>& plans, int64_t layers, bool gptq) {
  std::vector<Stage> stages;
  if (!gptq) {
    for (const auto& p : plans) stages.push_back({&p});
    return stages;
  }
  auto collect = [&](auto wanted) {
    Stage s;
    for (const auto& p : plans)
      if (wanted(p.matrix)) s.push_back(&p);
    if (!s.empty()) stages.push_back(std::move(s));
  };
  collect([](const NamedMatrix& m) { return m.kind == MatrixKind::kEmbedding; });
  for (int64_t l = 0; l < layers; ++l) {  // W_ih and W_hh together, then W_hr on its own
    collect([&](const NamedMatrix& m) {
      return (m.kind == MatrixKind::kInput || m.kind == MatrixKind::kRecurrent) && m.layer == l;
    });
    collect(
        [&](const NamedMatrix& m) { return m.kind == MatrixKind::kProjection && m.layer == l; });
  }
  collect([](const NamedMatrix& m) { return m.kind == MatrixKind::kDecoder; });
  return stages;
}

// What the row widths' sensitivities are measured with: train frequencies, W_ih of layer 0, and
// the float decoder's inputs on the calibration slice where a row is measured by its Fisher.
RowData row_data(const LstmLm& model, const QuantConfig& cfg, const std::vector<MatrixPlan>& plans,
                 const Calibration* calibration) {
  RowData rows;
  if (!cfg.has_row_widths()) return rows;
  rows.freq = smoothed_frequency(calibration->token_counts, model->config().vocab);
  rows.feed = model->w_ih.at(0).detach().to(torch::kCPU, torch::kFloat);
  rows.decoder_bias = model->decoder_bias.detach().to(torch::kCPU, torch::kFloat);
  for (const auto& p : plans) {
    if (p.sensitivity == "fisher" || p.sensitivity == "tied")
      rows.decoder_h =
          calibration_inputs(*LstmLm(model), *calibration, {p.matrix.name}).at(p.matrix.name);
    if (p.sensitivity == "tied") rows.moment = embedding_fisher_moment(model, *calibration);
  }
  return rows;
}

}  // namespace

QuantizedModel quantize_model(const LstmLm& model, const QuantConfig& asked,
                              const Calibration* calibration) {
  asked.validate();
  QuantConfig cfg = asked;
  if (cfg.bits_per_weight > 0)
    cfg.row_budget = row_budget_for_bits_per_weight(*model, cfg, cfg.bits_per_weight);
  const bool gptq = cfg.rounding == Rounding::kGptq;
  if (cfg.needs_calibration() && (!calibration || !calibration->tokens.defined()))
    throw std::invalid_argument(std::string(gptq ? "gptq rounding" : "row widths") +
                                " need calibration data (a slice of the train split, "
                                "quant/calibration.h)");
  const auto t0 = std::chrono::steady_clock::now();
  const auto& mc = model->config();
  const std::vector<MatrixPlan> plans = plan_matrices(mc, cfg);
  for (const auto& p : plans)
    if (!torch::isfinite(p.matrix.weight(*model)).all().item<bool>())
      throw std::runtime_error("matrix " + p.matrix.name +
                               ": its float weights already hold NaN or Inf; quantize a finite "
                               "model (retrain or restore an earlier checkpoint)");
  QuantizedModel out;
  out.asked = asked;
  out.config = applied_config(cfg, plans);
  const auto device = model->device();
  out.folded = LstmLm(model->clone_model());
  if (cfg.build_expanded) {
    out.expanded = LstmLm(model->clone_model());
    if (cfg.method == Method::kOcs) out.transformed = LstmLm(model->clone_model());
  }
  // Whole-model accounting starts from every stored weight at 32 bits.
  out.params_before = stored_parameter_count(*model);
  out.float_size_bits = 32.0 * static_cast<double>(out.params_before);
  out.size_bits = out.float_size_bits;
  out.macs_before = macs_per_token(*model);

  torch::NoGradGuard guard;
  // Installs a matrix into the realisations (folded gets Ŵ; expanded gets Ŵ' and the index
  // list; transformed gets the unrounded W' and the index list) and the accounting, its report
  // carrying its plan.
  auto install = [&](const MatrixPlan& plan, MatrixResult r) {
    const NamedMatrix& m = plan.matrix;
    if (!torch::isfinite(r.folded).all().item<bool>())
      throw std::runtime_error("quantizing matrix " + m.name +
                               " gave NaN or Inf weights from finite ones (a step of Inf?)");
    m.weight(*out.folded).set_data(r.folded.to(device));
    const auto idx = r.q.plan.splits() > 0 ? ocs_index(r.q.plan, device) : torch::Tensor();
    for (auto [real, w] :
         {std::pair{&out.expanded, &r.dequant}, std::pair{&out.transformed, &r.split}}) {
      if (!*real) continue;
      m.weight(**real).set_data(w->to(device));
      m.expansion_slot(**real) = idx;
      // The tied matrix's split columns are also the decoder's duplicated inputs.
      if (m.tied) (*real)->expansion.decoder_idx = idx;
    }
    auto& rep = r.report;
    rep.objective = to_string(plan.objective);
    rep.rounding = to_string(plan.rounding());
    rep.widths = plan.widths(cfg);
    rep.granularity = to_string(plan.granularity);
    rep.rotated = plan.rotated;
    rep.sensitivity = plan.sensitivity;
    rep.not_applied = plan.not_applied;
    out.size_bits += stored_bits_change(rep, r.q, cfg);
    out.params_after += rep.params_after - rep.params_before;
    out.macs_after += rep.macs_after - rep.macs_before;
    out.matrices.push_back(std::move(rep));
    out.tensors.push_back(std::move(r.q));
  };
  const RowData rows = row_data(model, cfg, plans, calibration);
  // The float model's decoder inputs on the calibration slice (its top-layer h_t): the row
  // sensitivities hold them already when they price rows by the output distribution.
  auto float_decoder_inputs = [&](const NamedMatrix& dec) {
    return rows.decoder_h.defined()
               ? rows.decoder_h
               : calibration_inputs(*LstmLm(model), *calibration, {dec.name}).at(dec.name);
  };
  // One matrix on its own: to nearest, compensated with `hessian` (over its natural inputs), or
  // row by row with the decoder's Fisher Hessians; a width per row where its plan says.
  auto quantize_one = [&](const MatrixPlan& p, const torch::Tensor& hessian,
                          const DecoderFisher* fisher) {
    const NamedMatrix& m = p.matrix;
    const auto& w = m.weight(*model);
    if (p.row_widths) return install(p, quantize_rows(p, w, cfg, rows, hessian, fisher));
    if (fisher) {
      std::vector<Prepared> parts{prepare_matrix(m, w, cfg)};
      auto codes = fisher_codes(parts, in_basis_of(*fisher, parts.front()), cfg);
      return install(p, finish_matrix(std::move(parts.front()), codes.front()));
    }
    if (hessian.defined())
      return install(
          p, compensate_with(
                 [&](double f) { return std::vector<Prepared>{prepare_matrix(m, w, cfg, f)}; },
                 hessian, cfg, p.alpha_by_output)
                 .front());
    install(p, round_to_nearest(prepare_matrix(m, w, cfg)));
  };
  for (const Stage& stage : stages_of(plans, mc.layers, gptq)) {
    const MatrixPlan& first = *stage.front();
    const NamedMatrix& m = first.matrix;
    const bool decoder = m.kind == MatrixKind::kDecoder;
    if (first.objective == Objective::kWeight) {
      for (const auto* p : stage) quantize_one(*p, {}, nullptr);
    } else if (first.objective == Objective::kFeed) {
      quantize_one(first, feed_hessian(model->w_ih.at(0)), nullptr);
    } else if (first.objective == Objective::kTied) {
      // Both roles from the float model (the tied matrix is the first quantized): the decoder's
      // Fisher on its top-layer outputs, the embedding's gradient moment, the train frequencies.
      const auto x = float_decoder_inputs(m);
      const auto moment =
          rows.moment.defined() ? rows.moment : embedding_fisher_moment(model, *calibration);
      const DecoderFisher f =
          tied_fisher(DecoderFisher(x, m.weight(*model), model->decoder_bias),
                      smoothed_frequency(calibration->token_counts, mc.vocab), moment);
      quantize_one(first, {}, &f);
    } else if (decoder) {
      // The decoder's inputs with every matrix below it quantized; p_t from the float decoder.
      const auto x = calibration_inputs(*out.folded, *calibration, {m.name}).at(m.name);
      if (first.objective == Objective::kFisher) {
        const DecoderFisher f(x, m.weight(*model), model->decoder_bias);
        quantize_one(first, {}, &f);
      } else {
        quantize_one(first, gptq_hessian(x), nullptr);
      }
    } else {
      // W_ih and W_hh of a layer as one matrix on [x_t ; h_{t−1}] (or a projection W_hr alone on
      // its r_t).
      std::vector<std::string> names;
      for (const auto* p : stage) names.push_back(p->matrix.name);
      auto inputs = calibration_inputs(*out.folded, *calibration, names);
      std::vector<torch::Tensor> xs;
      for (const auto& n : names) xs.push_back(inputs.at(n));
      auto results = compensate_with(
          [&](double f) {
            std::vector<Prepared> parts;
            for (const auto* p : stage)
              parts.push_back(prepare_matrix(p->matrix, p->matrix.weight(*model), cfg, f));
            return parts;
          },
          gptq_hessian(torch::cat(xs, 1)), cfg, first.alpha_by_output);
      for (size_t i = 0; i < stage.size(); ++i) install(*stage[i], std::move(results[i]));
    }
    release_free_memory();  // the stage's transients (util/runtime.h)
  }
  if (cfg.refit_decoder_bias) {
    // The float model's decoder inputs and the quantized model's, every matrix quantized; the
    // refitted bias goes to the realisations that carry Ŵ (not to `transformed`, the float
    // function).
    const NamedMatrix dec = matrix_covering(mc, MatrixKind::kDecoder);
    const auto h = float_decoder_inputs(dec);
    const auto h_hat = calibration_inputs(*out.folded, *calibration, {dec.name}).at(dec.name);
    const BiasRefit r = refit_decoder_bias(h, dec.weight(*model), model->decoder_bias, h_hat,
                                           dec.weight(*out.folded));
    for (LstmLm* real : {&out.folded, &out.expanded})
      if (*real) (*real)->decoder_bias.set_data(r.bias.to(device));
    out.bias_refit_kl = r.kl;
  }
  out.params_after += out.params_before;
  out.macs_after += out.macs_before;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace lmquant
