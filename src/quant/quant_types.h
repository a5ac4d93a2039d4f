// The vocabulary of quantization: granularity, targets, methods. Each enum has to_string and a
// parse_* that lists the valid values when it throws.
#pragma once
#include <string>
#include <vector>

#include "lm/matrices.h"

namespace lmquant {

// tensor: one scale per matrix (the OCS paper); row: one per output row; gate: one per gate block
// (the i, f, g, o blocks of H rows) of an LSTM matrix; embedding and decoder have no gates, so
// there `gate` means one scale per matrix.
enum class Granularity { kTensor, kRow, kGate };
std::string to_string(Granularity g);
Granularity parse_granularity(const std::string& s);

// The named matrices (lm/matrices.h): embedding (encoder, V x E), input.l{k} (W_ih),
// recurrent.l{k} (W_hh), decoder (V x H). A Target selects a kind; all layers' matrices of that
// kind follow.
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

}  // namespace lmquant
