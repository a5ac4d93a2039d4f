// The vocabulary of quantization: granularity, targets, methods. Each enum has to_string and a
// parse_* that lists the valid values when it throws.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lm/matrices.h"

namespace lmquant {

// Which weights share one scale (one α, one step s = α / qmax):
//   tensor   one per matrix (the OCS paper);
//   row      one per output row;
//   gate     one per gate block (the i, f, g, o blocks of H rows) of an LSTM matrix; embedding and
//            decoder have no gates, so there `gate` means one scale per matrix;
//   group:G  one per G consecutive input weights of a row (columns [0, G), [G, 2G), ...; the last
//            group of a row may be shorter). With OCS the groups run over the widened row.
// Example: a 2 x 5 matrix has 1 (tensor), 2 (row) or 2 · ⌈5 / 2⌉ = 6 (group:2) scales.
struct Granularity {
  enum class Kind { kTensor, kRow, kGate, kGroup };
  Kind kind = Kind::kTensor;
  int group = 0;  // G, for kGroup only

  static const Granularity kTensor, kRow, kGate;
  static Granularity Group(int g);  // throws std::invalid_argument unless G >= 1
  bool operator==(const Granularity& o) const { return kind == o.kind && group == o.group; }
  bool operator!=(const Granularity& o) const { return !(*this == o); }
  bool operator<(const Granularity& o) const {
    return kind != o.kind ? kind < o.kind : group < o.group;
  }
};
inline const Granularity Granularity::kTensor{Granularity::Kind::kTensor, 0};
inline const Granularity Granularity::kRow{Granularity::Kind::kRow, 0};
inline const Granularity Granularity::kGate{Granularity::Kind::kGate, 0};
std::string to_string(Granularity g);
// Bits stored per step: 16 for group:G (each step is rounded to float16 when it is chosen, so the
// simulated model is the one a packed file holds; float16's 11-bit significand moves a step by at
// most 2^-11 of itself, and at G = 32 a 32-bit scale would cost as much as one more bit per
// weight), 32 for whole-row, gate and tensor steps (one per row of 200: 0.16 bits per weight),
// or 16 for those too with `half` (QuantConfig::half_scales: at 2 bits per weight the 0.08 bits
// saved are 4% of the budget).
int scale_bits(Granularity g, bool half = false);
// A step as it is stored: rounded to float16 for group:G (and for every granularity with
// `half`), unchanged otherwise.
float stored_step(float step, Granularity g, bool half = false);
// "tensor", "row", "gate" or "group:G" (G >= 1).
Granularity parse_granularity(const std::string& s);

// A quantization group: rows [r0, r1) × columns [c0, c1) of a matrix; its weights share one step.
struct Group {
  int64_t r0, r1, c0, c1;
};
// The groups of a rows × width matrix at granularity g, in row-major order (`gated`: its rows are
// the i, f, g, o blocks, so `gate` has four groups; else `gate` is one group like `tensor`).
// Example: 2 × 5 at group:2 → per row [0, 2), [2, 4), [4, 5): six groups.
std::vector<Group> groups_of(int64_t rows, int64_t width, Granularity g, bool gated);

// The named matrices (lm/matrices.h): embedding (encoder, V x E), input.l{k} (W_ih),
// recurrent.l{k} (W_hh), projection.l{k} (W_hr of an LSTMP layer), decoder (V x D). A Target
// selects a kind; all layers' matrices of that kind follow (`recurrent` takes the projections
// too, so that `all` keeps meaning embedding,input,recurrent,decoder).
using Target = MatrixKind;
std::string to_string(Target t);
Target parse_target(const std::string& s);
// "all" or a comma-separated list ("recurrent,embedding").
std::vector<Target> parse_targets(const std::string& s);
std::string to_string(const std::vector<Target>& targets);

// float: no quantization; clip: uniform quantizer with a clip rule; ocs: OCS split, then clip.
enum class Method { kFloat, kClip, kOcs };
std::string to_string(Method m);
Method parse_method(const std::string& s);

// How a weight becomes a code once its group's step is fixed: nearest (round to the nearest grid
// point, each weight on its own) or gptq (error-compensating: quant/gptq.h).
enum class Rounding { kNearest, kGptq };
std::string to_string(Rounding r);
Rounding parse_rounding(const std::string& s);

}  // namespace lmquant
