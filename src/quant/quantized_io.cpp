#include "quant/quantized_io.h"

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

#include "lm/matrices.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace lmquant {
namespace {

}  // namespace

void save_quantized(const std::string& path, const LoadedModel& source, const QuantizedModel& qm) {
  Checkpoint ck;
  ck.kind = "quantized";
  ck.config = source.model->config();
  ck.tokenizer = source.tokenizer;
  ck.vocab_hash = source.vocab_hash;
  ck.vocab = source.vocab;
  ck.meta = {{"quant", qm.config.to_json()}, {"source_sha256", source.file_sha256},
             {"source_path", source.path}};
  std::set<std::string> quantized;
  for (const auto& t : qm.tensors) quantized.insert(find_matrix(ck.config, t.name).pytorch_key);
  for (const auto& [name, t] : stored_weights(*source.model))
    if (!quantized.count(name)) ck.tensors.emplace_back(name, t);
  for (const auto& t : qm.tensors) {
    ck.tensors.emplace_back(t.name + ".codes", t.codes);
    ck.tensors.emplace_back(t.name + ".step", t.step);
    ck.tensors.emplace_back(t.name + ".group_size", torch::tensor({t.group_size}, torch::kInt64));
    ck.tensors.emplace_back(t.name + ".ocs_source", torch::tensor(t.plan.source, torch::kInt64));
  }
  save_checkpoint(path, ck);
}

LoadedModel load_any_model(const std::string& path, const torch::Device& device) {
  {
    std::ifstream in(path, std::ios::binary);
    char magic[8] = {0};
    in.read(magic, 8);
    if (!in || std::memcmp(magic, kCheckpointMagic, 8) != 0) return load_model(path, device);
  }
  Checkpoint ck = read_checkpoint(path);
  if (ck.kind != "quantized") return load_model(path, device);
  LoadedModel out;
  out.path = path;
  out.format = "quantized";
  out.file_sha256 = sha256_file(path);
  out.tokenizer = ck.tokenizer;
  out.vocab_hash = ck.vocab_hash;
  out.vocab = ck.vocab;
  out.meta = ck.meta;
  out.model = LstmLm(ck.config);
  torch::NoGradGuard guard;
  std::map<std::string, torch::Tensor> t(ck.tensors.begin(), ck.tensors.end());
  for (auto& [name, p] : out.model->named_weights()) {
    if (auto it = t.find(name); it != t.end()) {
      if (!it->second.sizes().equals(p.sizes()))
        throw std::runtime_error(path + ": tensor " + name + " has the wrong shape");
      p.copy_(it->second);
    }
  }
  for (const auto& [name, codes] : t) {
    if (name.size() < 6 || name.substr(name.size() - 6) != ".codes") continue;
    const std::string matrix = name.substr(0, name.size() - 6);
    auto step = t.find(matrix + ".step"), src = t.find(matrix + ".ocs_source");
    if (step == t.end() || src == t.end())
      throw std::runtime_error(path + ": matrix " + matrix + " lacks its step or OCS source list");
    torch::Tensor* param = nullptr;
    try {
      param = &find_matrix(ck.config, matrix).weight(*out.model);
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ": unknown quantized matrix (" + e.what() + ")");
    }
    const int64_t in = param->size(1), k = src->second.numel();
    // One step per row (group_size absent: files before group scales) or per G columns.
    const auto gs = t.find(matrix + ".group_size");
    const int64_t group = gs == t.end() ? in + k : gs->second.numel() == 1 ? gs->second.item<int64_t>() : -1;
    if (codes.dim() != 2 || codes.size(0) != param->size(0) || codes.size(1) != in + k ||
        group < 1 || step->second.numel() != codes.size(0) * ((in + k + group - 1) / group) ||
        (k > 0 && (src->second.min().item<int64_t>() < 0 || src->second.max().item<int64_t>() >= in)))
      throw std::runtime_error(path + ": quantized matrix " + matrix + " has inconsistent shapes");
    QuantizedMatrix qm;
    qm.codes = codes;
    qm.step = step->second.reshape({codes.size(0), -1});
    qm.group_size = group;
    auto deq = codes.to(torch::kFloat) * qm.step_per_weight();
    auto folded = deq.narrow(1, 0, in).clone();
    if (k > 0) folded.index_add_(1, src->second, deq.narrow(1, in, k));
    check_finite(path, matrix, folded);
    param->copy_(folded);
  }
  out.model->to(device);
  out.model->eval();
  return out;
}

}  // namespace lmquant
