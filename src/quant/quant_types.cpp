#include "quant/quant_types.h"

#include <sstream>
#include <stdexcept>

namespace lmquant {

std::string to_string(Granularity g) {
  switch (g) {
    case Granularity::kTensor: return "tensor";
    case Granularity::kRow: return "row";
    case Granularity::kGate: return "gate";
  }
  return "?";
}

Granularity parse_granularity(const std::string& s) {
  if (s == "tensor") return Granularity::kTensor;
  if (s == "row") return Granularity::kRow;
  if (s == "gate") return Granularity::kGate;
  throw std::invalid_argument("unknown granularity '" + s + "'; valid values: tensor, row, gate");
}

std::string to_string(Target t) {
  switch (t) {
    case Target::kEmbedding: return "embedding";
    case Target::kInput: return "input";
    case Target::kRecurrent: return "recurrent";
    case Target::kDecoder: return "decoder";
  }
  return "?";
}

Target parse_target(const std::string& s) {
  if (s == "embedding") return Target::kEmbedding;
  if (s == "input") return Target::kInput;
  if (s == "recurrent") return Target::kRecurrent;
  if (s == "decoder") return Target::kDecoder;
  throw std::invalid_argument("unknown target '" + s +
                              "'; valid values: all, embedding, input, recurrent, decoder");
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
    throw std::invalid_argument("no targets given; valid values: all, embedding, input, "
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
    case Method::kFloat: return "float";
    case Method::kClip: return "clip";
    case Method::kOcs: return "ocs";
  }
  return "?";
}

Method parse_method(const std::string& s) {
  if (s == "float") return Method::kFloat;
  if (s == "clip") return Method::kClip;
  if (s == "ocs") return Method::kOcs;
  throw std::invalid_argument("unknown method '" + s + "'; valid values: float, clip, ocs");
}

}  // namespace lmquant
