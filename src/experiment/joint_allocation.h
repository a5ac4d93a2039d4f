// The joint mixed-precision solver (`--joint-budget T`): bit widths, scale granularity and the
// vocabulary matrices' row budgets chosen together, every comparison a whole-model measurement.
//
// Objective (stated): over the configurations reachable from a start configuration by the moves
// below,
//
//   minimise  L(c) = mean NLL per token of the whole quantized model c on the selection stream
//                    (valid, or its first N tokens; never test)
//   subject to size(c) = T · P bits,
//
// P the model's stored parameters and size(c) what quantize_model counts (codes at their
// widths, each row's width tag, every scale, the float rest): T is the record's bits per weight.
//
// Coordinates: each targeted matrix without row widths has a width b (min..max bits) and a
// granularity (from a candidate set); each row-width matrix (the embedding and the decoder, or
// the tied matrix) has a granularity; with two row-width matrices, the split d = r_decoder −
// r_embedding of their row budgets. The row budgets absorb the size: after every move they are
// set to (r − d/2, r + d/2) with r solving size = T · P (size is linear in r). A move that takes
// a row budget outside the row widths' range, or that validate() refuses, is not made.
//
// Search: steepest descent over single-coordinate moves. Each round measures L at every
// neighbour of the current configuration — b ± 1 of each matrix, each other granularity of each
// matrix, d ± step — with all other coordinates at their current values, i.e. each matrix's
// sensitivity is re-measured on the whole model after every accepted assignment; it accepts the
// neighbour with the least L when that lowers L by more than min_gain, and stops when none does
// (a local minimum over these moves) or after max_rounds. Each configuration is measured once.
//
// Noise floor: a configuration's loss is one rounding of it; an equally good rounding (α
// jittered by ±1%, QuantConfig::repeat) moves it by σ, and a move's gain, a difference of two
// such losses, by √2 σ. With noise_repeats K > 0 the start is also measured at K jittered
// roundings, σ is the sample standard deviation of those K + 1 losses, and a move must gain more
// than max(min_gain, 2 √2 σ) — a move inside that band is not a finding. (wt2-lstm200 at 2.5
// bits/weight on valid[:50k]: σ = 0.0017 nats, larger than any single move's gain there.)
//
// Why not the per-matrix sum (`--bits-budget`, experiment/mixed_precision.h): sensitivities
// measured with one matrix quantized alone do not add (wt2-lstm200, 3 bits/weight: predicted
// +2.7%, measured +8.8%); here every number compared is the loss of the model that would ship.
// Cost: one quantization and one evaluation per neighbour (≈ 4 · 3 + 2 + 2 per round for a
// two-layer model with two granularities).
//
// Worked example (tests/joint_allocation_test.cpp, the synthetic problem): one plain matrix of
// 100 weights at b bits, an embedding and a decoder of 1,000 weights each, no scales, size
// 100 b + 1000 (r_e + r_d) = 5,400 bits, L = 2^−b + 0.1 · 2^−r_e + 0.3 · 2^−r_d, start b = 4,
// d = 0 (r_e = r_d = 2.5: L = 0.13321), step 0.5. Round 1: b = 5 (r = 2.45) gives 0.10445,
// b = 3 gives 0.19330, d = +0.5 (2.25, 2.75) gives 0.12812, d = −0.5 gives 0.14043 → b = 5.
// Round 2: b = 6 (r = 2.4) gives 0.09141, d = +0.5 gives 0.09918 → b = 6. Round 3: b = 7
// (r = 2.35) gives 0.08627, d = +0.5 (2.15, 2.65) gives 0.08595 → d = +0.5: the decoder, three
// times as sensitive here, takes bits from the embedding.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "experiment/experiment.h"

namespace lmquant {

struct JointOptions {
  int min_bits = 2, max_bits = 8;          // widths of the matrices without row widths
  std::vector<Granularity> granularities;  // tried on every matrix besides its current one
  double split_step = 0.25;                // d ± step, in bits per row
  int max_rounds = 12;
  double min_gain = 1e-4;  // nats per token a move must save
  int noise_repeats = 3;   // K jittered roundings of the start (0: no noise floor)
};

// One measured configuration: the move that led to it from the configuration of its round.
struct JointStep {
  int round = 0;
  std::string move;  // "input.l0 4→5b", "decoder row→group:64", "split +0.25 (embedding 2.3,
                     // decoder 2.8)"
  QuantConfig config;
  double loss = 0, size_bits = 0;
  bool accepted = false;
};

struct JointResult {
  QuantConfig config;  // the last accepted configuration
  double loss = 0, start_loss = 0, size_bits = 0;
  std::vector<JointStep> steps;  // every measurement, in order (the start first, round 0)
  int rounds = 0;
  int evaluations = 0;     // distinct configurations measured (jittered roundings included)
  double noise_std = 0;    // σ over the start's roundings (0 without noise_repeats)
  double min_gain = 0;     // the gain a move needed: max(min_gain, 2 √2 σ)
  bool converged = false;  // stopped at a local minimum (not at max_rounds)
};

// The search on any measurable problem (the tests give it synthetic losses).
struct JointProblem {
  QuantConfig start;               // with row widths; its row budgets are re-set to meet the size
  std::vector<std::string> plain;  // the targeted matrices without row widths
  std::vector<std::string> rows;   // the row-width matrices: {"embedding", "decoder"} or one
  double size_bits = 0;            // T · P
  std::function<double(const QuantConfig&)> size;  // linear in the row budgets
  std::function<double(const QuantConfig&)> loss;
};

// Throws std::invalid_argument when there are no row-width matrices to absorb the size, or the
// start cannot meet it (its row budgets would leave the widths' range).
JointResult refine_jointly(const JointProblem& problem, const JointOptions& options,
                           const Log& log = {});

// On a model: L measured by quantizing with `select`'s calibration and evaluating on its stream;
// size = predicted_size_bits. Throws std::invalid_argument when `select` is a test stream or
// `start` has no row widths.
JointResult choose_jointly(const EvalContext& select, const QuantConfig& start,
                           double bits_per_weight, const JointOptions& options,
                           const Log& log = {});

// The accepted moves as a table: round, move, loss, Δ loss; then the configuration.
std::string joint_table(const JointResult& result);

// The search as a record's "joint_allocation": T, the selection tokens, start and final loss,
// rounds, σ, the gain required, evaluations, convergence, the accepted moves.
nlohmann::json joint_json(const JointResult& result, double bits_per_weight, int64_t select_tokens);

}  // namespace lmquant
