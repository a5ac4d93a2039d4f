#include "quant/quantized_io.h"

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

#include "lm/matrices.h"
#include "quant/bit_packing.h"
#include "quant/matrix_plan.h"
#include "quant/rotation.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace lmquant {

void save_quantized(const std::string& path, const LoadedModel& source, const QuantizedModel& qm,
                    bool packed) {
  Checkpoint ck;
  ck.kind = packed ? "packed" : "quantized";
  ck.config = source.model->config();
  ck.tokenizer = source.tokenizer;
  ck.vocab_hash = source.vocab_hash;
  ck.vocab = source.vocab;
  ck.meta = {{"quant", qm.config.to_json()},
             {"source_sha256", source.file_sha256},
             {"source_path", source.path}};
  std::set<std::string> quantized;
  for (const auto& t : qm.tensors) quantized.insert(find_matrix(ck.config, t.name).pytorch_key);
  // Every other weight from the folded model: the float ones, and a refitted decoder bias.
  for (const auto& [name, t] : stored_weights(*qm.folded))
    if (!quantized.count(name)) ck.tensors.emplace_back(name, t);
  for (const auto& t : qm.tensors) {
    const int bits = qm.config.bits_for(t.name);
    if (t.row_bits.defined()) {
      // Rows of their own widths: the width of every row, then per width class b the codes of
      // its rows (in row order) packed at b bits.
      ck.tensors.emplace_back(t.name + ".row_bits", t.row_bits.to(torch::kByte));  // 0..8
      if (packed) {
        ck.tensors.emplace_back(t.name + ".shape",
                                torch::tensor(t.codes.sizes().vec(), torch::kInt64));
        const auto row_bits = t.row_bits.to(torch::kLong);
        const auto widths = std::get<0>(torch::_unique(row_bits));
        for (int64_t i = 0; i < widths.numel(); ++i) {
          const int b = static_cast<int>(widths[i].item<int64_t>());
          if (b == 0) continue;  // 0-bit rows are zero: no codes to store
          const auto rows = (row_bits == b).nonzero().view({-1});
          ck.tensors.emplace_back(t.name + ".packed_w" + std::to_string(b),
                                  pack_codes(t.codes.index_select(0, rows), b, qm.config.grid));
        }
      } else {
        ck.tensors.emplace_back(t.name + ".codes", t.codes);
      }
    } else if (packed && bits <= 8) {
      ck.tensors.emplace_back(t.name + ".packed", pack_codes(t.codes, bits, qm.config.grid));
      ck.tensors.emplace_back(t.name + ".bits", torch::tensor({int64_t{bits}}, torch::kInt64));
      ck.tensors.emplace_back(t.name + ".shape",
                              torch::tensor(t.codes.sizes().vec(), torch::kInt64));
    } else {
      ck.tensors.emplace_back(t.name + ".codes", t.codes);
    }
    const bool half =
        packed && (qm.config.granularity_for(t.name).kind == Granularity::Kind::kGroup ||
                   qm.config.half_scales);
    ck.tensors.emplace_back(t.name + ".step", half ? t.step.to(torch::kHalf) : t.step);
    ck.tensors.emplace_back(t.name + ".group_size", torch::tensor({t.group_size}, torch::kInt64));
    ck.tensors.emplace_back(t.name + ".ocs_source", torch::tensor(t.plan.source, torch::kInt64));
    if (t.rotation.defined()) {
      int64_t seed;
      std::memcpy(&seed, &t.rotation_seed, sizeof seed);
      ck.tensors.emplace_back(t.name + ".rotation_seed", torch::tensor({seed}, torch::kInt64));
    }
  }
  save_checkpoint(path, ck);
}

namespace {

bool is_lmquant_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {0};
  in.read(magic, 8);
  return in && is_checkpoint_magic(std::string_view(magic, 8));
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The configuration a quantized file says it was made with (meta "quant"), read strictly.
QuantConfig config_of_file(const std::string& path, const Checkpoint& ck) {
  for (const auto& [key, v] : ck.meta.items())
    if (key != "quant" && key != "source_sha256" && key != "source_path")
      throw std::runtime_error(path + ": unknown field '" + key + "' in a quantized file's meta");
  if (!ck.meta.contains("quant"))
    throw std::runtime_error(path + ": a quantized file without its configuration (meta quant)");
  try {
    return QuantConfig::from_json(ck.meta.at("quant"));
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": its quantization configuration is unreadable (" + e.what() +
                             ")");
  }
}

// The tensors a quantized or packed file of configuration `q` holds — every float weight that is
// not quantized, and per quantized matrix its codes in the kind's layout, steps, group size, OCS
// sources, row widths and rotation seed as `q` says — each with its dtype. Throws naming the
// first tensor that is missing, has another dtype, or is not one of them.
void check_layout(const std::string& path, const Checkpoint& ck, const QuantConfig& q) {
  const bool packed = ck.kind == "packed";
  std::map<std::string, torch::ScalarType> need;  // required
  std::map<std::string, torch::ScalarType> may;   // allowed (packed width classes, old files)
  std::set<std::string> quantized_keys;
  for (const auto& p : plan_matrices(ck.config, q)) {
    const std::string n = p.matrix.name;
    for (const auto& k : p.matrix.state_dict_keys()) quantized_keys.insert(k);
    const bool half = packed && (p.granularity.kind == Granularity::Kind::kGroup || q.half_scales);
    need[n + ".step"] = half ? torch::kHalf : torch::kFloat;
    (ck.format >= 2 ? need : may)[n + ".group_size"] = torch::kLong;
    need[n + ".ocs_source"] = torch::kLong;
    if (q.rotate) need[n + ".rotation_seed"] = torch::kLong;
    if (p.row_widths) {
      need[n + ".row_bits"] = torch::kByte;
      if (packed) {
        need[n + ".shape"] = torch::kLong;
        for (int b : q.row_widths)
          if (b > 0) may[n + ".packed_w" + std::to_string(b)] = torch::kByte;
      } else {
        need[n + ".codes"] = torch::kShort;
      }
    } else if (packed && p.bits <= 8) {
      need[n + ".packed"] = torch::kByte;
      need[n + ".bits"] = torch::kLong;
      need[n + ".shape"] = torch::kLong;
    } else {
      need[n + ".codes"] = torch::kShort;
    }
  }
  LstmLm shapes(ck.config, /*initialize=*/false);
  for (const auto& [name, w] : stored_weights(*shapes))
    if (!quantized_keys.count(name)) need[name] = torch::kFloat;
  std::map<std::string, torch::ScalarType> have;
  for (const auto& [name, t] : ck.tensors) {
    const auto it = need.count(name) ? need.find(name) : may.find(name);
    if (it == may.end())
      throw std::runtime_error(path + ": unknown tensor " + name + " in a " + ck.kind +
                               " file of " + q.label());
    if (t.scalar_type() != it->second)
      throw std::runtime_error(path + ": tensor " + name + " has dtype " +
                               std::string(c10::toString(t.scalar_type())) + ", expected " +
                               c10::toString(it->second));
    have[name] = t.scalar_type();
  }
  for (const auto& [name, dtype] : need)
    if (!have.count(name))
      throw std::runtime_error(path + ": tensor " + name + " is missing from a " + ck.kind +
                               " file of " + q.label());
  // Each quantized matrix is stored at the width the configuration gives it.
  for (const auto& p : plan_matrices(ck.config, q)) {
    if (p.row_widths || !packed || p.bits > 8) continue;
    const auto* b = ck.find(p.matrix.name + ".bits");
    if (b->numel() != 1 || b->item<int64_t>() != p.bits)
      throw std::runtime_error(path + ": matrix " + p.matrix.name + " is stored at " +
                               (b->numel() == 1 ? std::to_string(b->item<int64_t>()) : "?") +
                               " bits, its configuration says " + std::to_string(p.bits));
  }
}

QuantizedFile from_checkpoint(const std::string& path, const std::string& file_sha256,
                              Checkpoint ck, const torch::Device& device,
                              bool float_matrices = true) {
  const QuantConfig q = config_of_file(path, ck);
  check_layout(path, ck, q);
  QuantizedFile f;
  LoadedModel& out = f.loaded;
  out.path = path;
  out.format = ck.kind;
  out.file_sha256 = file_sha256;
  out.tokenizer = ck.tokenizer;
  out.vocab_hash = ck.vocab_hash;
  out.vocab = ck.vocab;
  out.meta = ck.meta;
  // Weights are overwritten below (or dropped, without float_matrices): no random init.
  out.model = LstmLm(ck.config, /*initialize=*/false);
  torch::NoGradGuard guard;
  std::map<std::string, torch::Tensor> t(ck.tensors.begin(), ck.tensors.end());
  // The grid the codes are on (packed codes are stored by it; files before it: midtread).
  const Grid grid = q.grid;
  // The quantized matrices: int16 `.codes`, or `.packed` with `.bits` and `.shape`, or (rows of
  // their own widths) `.row_bits` with `.shape` and a `.packed_wB` per width class.
  std::map<std::string, torch::Tensor> codes_of;
  for (const auto& [name, rb] : t) {
    if (!ends_with(name, ".row_bits")) continue;
    const std::string matrix = name.substr(0, name.size() - 9);
    if (t.count(matrix + ".codes")) continue;  // a quantized file: int16 codes below
    auto shape = t.find(matrix + ".shape");
    if (shape == t.end() || shape->second.numel() != 2 || rb.dim() != 1)
      throw std::runtime_error(path + ": packed matrix " + matrix + " lacks its shape");
    const int64_t rows = shape->second[0].item<int64_t>(), cols = shape->second[1].item<int64_t>();
    if (rb.numel() != rows || cols < 0)
      throw std::runtime_error(path + ": packed matrix " + matrix + " has " +
                               std::to_string(rb.numel()) + " row widths for " +
                               std::to_string(rows) + " rows");
    const auto widths = rb.to(torch::kLong);
    auto codes = torch::zeros({rows, cols}, torch::kChar);  // 0-bit rows stay 0
    for (int b = 1; b <= 8; ++b) {
      const auto sel = (widths == b).nonzero().view({-1});
      auto packed = t.find(matrix + ".packed_w" + std::to_string(b));
      if (sel.numel() == 0) continue;
      if (packed == t.end())
        throw std::runtime_error(path + ": packed matrix " + matrix + " lacks its " +
                                 std::to_string(b) + "-bit rows");
      try {
        codes.index_copy_(
            0, sel, unpack_codes(packed->second, sel.numel() * cols, b, grid).view({-1, cols}));
      } catch (const std::exception& e) {
        throw std::runtime_error(path + ": packed matrix " + matrix + ": " + e.what());
      }
    }
    if (((widths < 0) | (widths > 8)).any().item<bool>())
      throw std::runtime_error(path + ": packed matrix " + matrix +
                               " has a row width outside 0..8");
    codes_of[matrix] = codes;
  }
  for (const auto& [name, codes] : t) {
    if (ends_with(name, ".codes")) {
      codes_of[name.substr(0, name.size() - 6)] = codes;
    } else if (ends_with(name, ".packed")) {
      const std::string matrix = name.substr(0, name.size() - 7);
      auto bits = t.find(matrix + ".bits"), shape = t.find(matrix + ".shape");
      if (bits == t.end() || shape == t.end() || bits->second.numel() != 1 ||
          shape->second.numel() != 2)
        throw std::runtime_error(path + ": packed matrix " + matrix + " lacks its bits or shape");
      const int64_t rows = shape->second[0].item<int64_t>(),
                    cols = shape->second[1].item<int64_t>();
      const int64_t b = bits->second.item<int64_t>();
      if (rows < 0 || cols < 0 || b < 1 || b > 8)
        throw std::runtime_error(path + ": packed matrix " + matrix + " has a bad shape or width");
      try {
        codes_of[matrix] =
            unpack_codes(codes, rows * cols, static_cast<int>(b), grid).view({rows, cols});
      } catch (const std::exception& e) {
        throw std::runtime_error(path + ": packed matrix " + matrix + ": " + e.what());
      }
    }
  }
  // Without float_matrices the quantized matrices' tensors are dropped before anything touches
  // them (every key of the tensor: the tied matrix has two, lm/matrices.h).
  std::set<std::string> dropped;
  if (!float_matrices)
    for (const auto& m : named_matrices(ck.config))
      if (codes_of.count(m.name))
        for (const auto& k : m.state_dict_keys()) dropped.insert(k);
  for (auto& [name, p] : out.model->named_weights()) {
    if (dropped.count(name)) {
      p.set_data(torch::empty({0}, p.options()));  // its pages were never touched
      continue;
    }
    if (auto it = t.find(name); it != t.end()) {
      if (!it->second.sizes().equals(p.sizes()))
        throw std::runtime_error(path + ": tensor " + name + " has the wrong shape");
      p.copy_(it->second);
    }
  }
  for (const auto& [matrix, codes] : codes_of) {
    auto step = t.find(matrix + ".step"), src = t.find(matrix + ".ocs_source");
    if (step == t.end() || src == t.end())
      throw std::runtime_error(path + ": matrix " + matrix + " lacks its step or OCS source list");
    NamedMatrix named;
    try {
      named = find_matrix(ck.config, matrix);
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ": unknown quantized matrix (" + e.what() + ")");
    }
    const auto [rows, in] = matrix_shape(ck.config, named);
    const int64_t k = src->second.numel();
    // One step per row (group_size absent: files before group scales) or per G columns.
    const auto gs = t.find(matrix + ".group_size");
    const int64_t group = gs == t.end()             ? in + k
                          : gs->second.numel() == 1 ? gs->second.item<int64_t>()
                                                    : -1;
    // The split count and the scale groups the configuration gives this matrix.
    const int64_t splits = q.method == Method::kOcs ? ocs_split_count(q.expand_ratio, in) : 0;
    const Granularity gran = q.granularity_for(matrix);
    const int64_t want_group = gran.kind == Granularity::Kind::kGroup ? gran.group : in + k;
    if (k != splits || (gs != t.end() && group != want_group))
      throw std::runtime_error(path + ": quantized matrix " + matrix + " has " + std::to_string(k) +
                               " OCS splits and groups of " + std::to_string(group) +
                               " columns; its configuration (" + q.label() + ") gives " +
                               std::to_string(splits) + " and " + std::to_string(want_group));
    if (codes.dim() != 2 || codes.size(0) != rows || codes.size(1) != in + k || group < 1 ||
        step->second.numel() != codes.size(0) * ((in + k + group - 1) / group) ||
        (k > 0 &&
         (src->second.min().item<int64_t>() < 0 || src->second.max().item<int64_t>() >= in)))
      throw std::runtime_error(path + ": quantized matrix " + matrix + " has inconsistent shapes");
    QuantizedMatrix qm;
    qm.name = matrix;
    qm.codes = codes;
    if (auto rb = t.find(matrix + ".row_bits"); rb != t.end()) {
      if (rb->second.numel() != codes.size(0))
        throw std::runtime_error(path + ": quantized matrix " + matrix + " has " +
                                 std::to_string(rb->second.numel()) + " row widths for " +
                                 std::to_string(codes.size(0)) + " rows");
      qm.row_bits = rb->second.to(torch::kChar);
    }
    qm.step = step->second.to(torch::kFloat).reshape({codes.size(0), -1});
    // A tensor (or gate) scale is one step for the whole matrix (each gate block).
    if (gran.kind == Granularity::Kind::kTensor || gran.kind == Granularity::Kind::kGate) {
      const int64_t blocks =
          gran.kind == Granularity::Kind::kGate && named.gated && rows % 4 == 0 ? 4 : 1;
      const auto per_block = qm.step.reshape({blocks, -1});
      if (!torch::equal(per_block, per_block.narrow(1, 0, 1).expand_as(per_block)))
        throw std::runtime_error(path + ": quantized matrix " + matrix + " has " +
                                 "steps that differ within one " + to_string(gran) + " group");
    }
    qm.group_size = group;
    qm.plan.in = in;
    qm.plan.source.assign(src->second.data_ptr<int64_t>(), src->second.data_ptr<int64_t>() + k);
    if (auto rs = t.find(matrix + ".rotation_seed"); rs != t.end()) {
      if (rs->second.numel() != 1 || k > 0)
        throw std::runtime_error(path + ": quantized matrix " + matrix +
                                 " has a bad rotation seed (or a rotation with OCS splits)");
      const int64_t seed = rs->second.to(torch::kInt64).item<int64_t>();
      std::memcpy(&qm.rotation_seed, &seed, sizeof seed);
      qm.rotation = random_rotation(in, qm.rotation_seed);
    }
    if (float_matrices) {
      const auto folded = qm.dequantized();
      check_finite(path, matrix, folded);
      named.weight(*out.model).copy_(folded);
    } else {
      check_finite(path, matrix + ".step", qm.step);
    }
    f.matrices.push_back(std::move(qm));
  }
  out.model->to(device);
  out.model->eval();
  return f;
}

}  // namespace

QuantizedFile read_quantized(const std::string& path, const torch::Device& device,
                             bool float_matrices) {
  if (!is_lmquant_checkpoint(path))
    throw std::runtime_error(path +
                             ": not an lmquant quantized file (write one with quantize "
                             "--save-quantized or --save-packed)");
  const std::string bytes = read_file(path);
  return parse_quantized(bytes, path, device, float_matrices);
}

QuantizedFile parse_quantized(std::string_view bytes, const std::string& path,
                              const torch::Device& device, bool float_matrices) {
  Checkpoint ck = parse_checkpoint(bytes, path);
  if (ck.kind != "quantized" && ck.kind != "packed")
    throw std::runtime_error(path + ": a checkpoint of kind '" + ck.kind +
                             "', not a quantized or packed model");
  return from_checkpoint(path, sha256_bytes(bytes), std::move(ck), device, float_matrices);
}

LoadedModel load_any_model(const std::string& path, const torch::Device& device,
                           ImportFormat format) {
  if (!is_lmquant_checkpoint(path)) return load_model(path, device, format);
  const std::string bytes = read_file(path);
  Checkpoint ck = parse_checkpoint(bytes, path);
  // Parsed once: its tensors become the model's (a second parse would hold the weights twice).
  if (ck.kind != "quantized" && ck.kind != "packed")
    return model_of_checkpoint(std::move(ck), path, sha256_bytes(bytes), device);
  return from_checkpoint(path, sha256_bytes(bytes), std::move(ck), device).loaded;
}

}  // namespace lmquant
