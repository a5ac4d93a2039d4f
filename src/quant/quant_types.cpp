#include "quant/quant_types.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace lmquant {

Granularity Granularity::Group(int g) {
  if (g < 1) throw std::invalid_argument("group size must be >= 1, got " + std::to_string(g));
  return {Kind::kGroup, g};
}

std::string to_string(Granularity g) {
  switch (g.kind) {
    case Granularity::Kind::kTensor:
      return "tensor";
    case Granularity::Kind::kRow:
      return "row";
    case Granularity::Kind::kGate:
      return "gate";
    case Granularity::Kind::kGroup:
      return "group:" + std::to_string(g.group);
  }
  return "?";
}

int scale_bits(Granularity g, bool half) {
  return half || g.kind == Granularity::Kind::kGroup ? 16 : 32;
}

float stored_step(float step, Granularity g, bool half) {
  if (!half && g.kind != Granularity::Kind::kGroup) return step;
  if (!(std::fabs(step) <= 65504.0f))
    throw std::invalid_argument("a step " + std::to_string(step) +
                                " does not fit a float16 scale (max 65504)");
  const float h = static_cast<float>(c10::Half(step));
  // A step below float16's smallest subnormal would round to 0: keep the smallest positive one
  // (its grid still reaches the group's α).
  if (h == 0 && step > 0) return static_cast<float>(std::numeric_limits<c10::Half>::denorm_min());
  return h;
}

Granularity parse_granularity(const std::string& s) {
  if (s == "tensor") return Granularity::kTensor;
  if (s == "row") return Granularity::kRow;
  if (s == "gate") return Granularity::kGate;
  if (s.rfind("group:", 0) == 0) {
    const std::string n = s.substr(6);
    size_t used = 0;
    int g = 0;
    try {
      g = std::stoi(n, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == n.size() && !n.empty() && g >= 1) return Granularity::Group(g);
    throw std::invalid_argument("bad group size in '" + s +
                                "': give group:G with G >= 1, e.g. group:32");
  }
  throw std::invalid_argument("unknown granularity '" + s +
                              "'; valid values: tensor, row, gate, group:G (e.g. group:32)");
}

std::string to_string(Target t) {
  switch (t) {
    case Target::kEmbedding:
      return "embedding";
    case Target::kInput:
      return "input";
    case Target::kRecurrent:
      return "recurrent";
    case Target::kDecoder:
      return "decoder";
    case Target::kProjection:
      return "projection";
  }
  return "?";
}

Target parse_target(const std::string& s) {
  if (s == "embedding") return Target::kEmbedding;
  if (s == "input") return Target::kInput;
  if (s == "recurrent") return Target::kRecurrent;
  if (s == "decoder") return Target::kDecoder;
  if (s == "projection") return Target::kProjection;
  throw std::invalid_argument(
      "unknown target '" + s +
      "'; valid values: all, embedding, input, recurrent (W_hh and W_hr), decoder, projection");
}

std::vector<Target> parse_targets(const std::string& s) {
  if (s == "all") return {Target::kEmbedding, Target::kInput, Target::kRecurrent, Target::kDecoder};
  std::vector<Target> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const Target t = parse_target(item);
    bool seen = false;
    for (auto o : out) seen = seen || o == t;
    if (!seen) out.push_back(t);
  }
  if (out.empty())
    throw std::invalid_argument(
        "no targets given; valid values: all, embedding, input, "
        "recurrent, decoder");
  return out;
}

std::string to_string(const std::vector<Target>& targets) {
  std::string s;
  for (auto t : targets) s += (s.empty() ? "" : ",") + to_string(t);
  return s;
}

std::string to_string(Method m) {
  switch (m) {
    case Method::kFloat:
      return "float";
    case Method::kClip:
      return "clip";
    case Method::kOcs:
      return "ocs";
  }
  return "?";
}

Method parse_method(const std::string& s) {
  if (s == "float") return Method::kFloat;
  if (s == "clip") return Method::kClip;
  if (s == "ocs") return Method::kOcs;
  throw std::invalid_argument("unknown method '" + s + "'; valid values: float, clip, ocs");
}

std::string to_string(Rounding r) { return r == Rounding::kGptq ? "gptq" : "nearest"; }

Rounding parse_rounding(const std::string& s) {
  if (s == "nearest") return Rounding::kNearest;
  if (s == "gptq") return Rounding::kGptq;
  throw std::invalid_argument("unknown rounding '" + s + "'; valid values: nearest, gptq");
}

std::vector<Group> groups_of(int64_t rows, int64_t width, Granularity g, bool gated) {
  std::vector<Group> out;
  switch (g.kind) {
    case Granularity::Kind::kRow:
      for (int64_t r = 0; r < rows; ++r) out.push_back({r, r + 1, 0, width});
      break;
    case Granularity::Kind::kGroup:
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < width; c += g.group)
          out.push_back({r, r + 1, c, std::min(width, c + g.group)});
      break;
    case Granularity::Kind::kGate:
      if (gated && rows % 4 == 0) {
        for (int64_t k = 0; k < 4; ++k) out.push_back({k * rows / 4, (k + 1) * rows / 4, 0, width});
        break;
      }
      [[fallthrough]];
    case Granularity::Kind::kTensor:
      out.push_back({0, rows, 0, width});
  }
  return out;
}

}  // namespace lmquant
