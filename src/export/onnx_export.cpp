#include "export/onnx_export.h"

#include <stdexcept>

#include "export/onnx_proto.h"
#include "report/record.h"
#include "util/atomic_file.h"

namespace lmquant {
namespace {

// PyTorch's gate blocks [i; f; g; o] (each H rows) re-stacked as ONNX's [i; o; f; c].
torch::Tensor onnx_gates(const torch::Tensor& w, int64_t H) {
  auto blocks = w.detach().cpu().to(torch::kFloat).split(H, 0);
  return torch::cat({blocks[0], blocks[3], blocks[1], blocks[2]}, 0);
}

onnx::Attribute int_attr(const std::string& name, int64_t v) {
  onnx::Attribute a;
  a.name = name;
  a.i = v;
  return a;
}

}  // namespace

std::string onnx_model(const LstmLmImpl& model) {
  if (!model.expansion.empty())
    throw std::invalid_argument(
        "an OCS-expanded model has no plain ONNX LSTM form; save it with quantize "
        "--save-quantized (it loads folded) and export that file");
  const LstmLmConfig& c = model.config();
  const int64_t H = c.hidden, L = c.layers, V = c.vocab;
  onnx::Graph g;
  g.name = "lmquant_lstm_lm";
  auto init = [&](const std::string& name, torch::Tensor t) {
    g.initializers.emplace_back(name, t.detach().cpu().contiguous());
  };
  auto node = [&](const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                  std::vector<onnx::Attribute> attrs = {}) {
    g.nodes.push_back({op, std::move(in), std::move(out), std::move(attrs), ""});
  };
  init("encoder.weight", model.encoder.to(torch::kFloat));
  node("Gather", {"encoder.weight", "tokens"}, {"x0"}, {int_attr("axis", 0)});
  init("axes0", torch::tensor({int64_t{0}}));
  init("axes1", torch::tensor({int64_t{1}}));
  std::vector<std::string> hn, cn;
  std::string x = "x0";
  for (int64_t k = 0; k < L; ++k) {
    const std::string s = std::to_string(k);
    init("W" + s, onnx_gates(model.w_ih[k], H).unsqueeze(0));
    init("R" + s, onnx_gates(model.w_hh[k], H).unsqueeze(0));
    init("B" + s, torch::cat({onnx_gates(model.b_ih[k].unsqueeze(1), H).squeeze(1),
                              onnx_gates(model.b_hh[k].unsqueeze(1), H).squeeze(1)})
                      .unsqueeze(0));
    init("start" + s, torch::tensor({k}));
    init("end" + s, torch::tensor({k + 1}));
    node("Slice", {"h0", "start" + s, "end" + s, "axes0"}, {"h0_" + s});
    node("Slice", {"c0", "start" + s, "end" + s, "axes0"}, {"c0_" + s});
    node("LSTM", {x, "W" + s, "R" + s, "B" + s, "", "h0_" + s, "c0_" + s},
         {"Y" + s, "hn" + s, "cn" + s}, {int_attr("hidden_size", H)});
    x = "y" + s;
    node("Squeeze", {"Y" + s, "axes1"}, {x});  // [seq, 1 direction, batch, H] → [seq, batch, H]
    hn.push_back("hn" + s);
    cn.push_back("cn" + s);
  }
  node("Concat", hn, {"h_n"}, {int_attr("axis", 0)});
  node("Concat", cn, {"c_n"}, {int_attr("axis", 0)});
  init("decoder.weight.T", model.decoder_weight.detach().to(torch::kFloat).t().contiguous());
  init("decoder.bias", model.decoder_bias.to(torch::kFloat));
  node("MatMul", {x, "decoder.weight.T"}, {"decoded"});
  node("Add", {"decoded", "decoder.bias"}, {"logits"});
  node("LogSoftmax", {"logits"}, {"logprobs"}, {int_attr("axis", -1)});
  const std::string Hs = std::to_string(H), Ls = std::to_string(L);
  g.inputs = {{"tokens", onnx::ElemType::kInt64, {"seq", "batch"}},
              {"h0", onnx::ElemType::kFloat, {Ls, "batch", Hs}},
              {"c0", onnx::ElemType::kFloat, {Ls, "batch", Hs}}};
  g.outputs = {{"logprobs", onnx::ElemType::kFloat, {"seq", "batch", std::to_string(V)}},
               {"h_n", onnx::ElemType::kFloat, {Ls, "batch", Hs}},
               {"c_n", onnx::ElemType::kFloat, {Ls, "batch", Hs}}};
  return onnx::serialize_model(g, 17, lmquant_version());
}

void save_onnx(const std::string& path, const LstmLmImpl& model) {
  write_file_atomic(path, onnx_model(model));
}

}  // namespace lmquant
