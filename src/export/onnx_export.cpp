#include "export/onnx_export.h"

#include <set>
#include <stdexcept>

#include "export/onnx_proto.h"
#include "report/record.h"
#include "util/atomic_file.h"

namespace lmquant {
namespace {

// PyTorch's gate blocks [i; f; g; o] (each H rows) re-stacked as ONNX's [i; o; f; c].
torch::Tensor onnx_gates(const torch::Tensor& w, int64_t H) {
  const torch::Tensor c = w.detach().cpu();
  auto blocks = (c.is_floating_point() ? c.to(torch::kFloat) : c).split(H, 0);
  return torch::cat({blocks[0], blocks[3], blocks[1], blocks[2]}, 0);
}

// One matrix's int8 codes [rows, cols] and row steps [rows] for the int8 form, checked.
std::pair<torch::Tensor, torch::Tensor> int8_rows(const std::vector<QuantizedMatrix>& all,
                                                  const std::string& name, int64_t cols) {
  const QuantizedMatrix* m = nullptr;
  for (const auto& q : all)
    if (q.name == name) m = &q;
  if (!m) throw std::invalid_argument("the int8 ONNX form needs matrix " + name + " quantized");
  if (m->plan.splits() > 0 || m->rotation.defined())
    throw std::invalid_argument("matrix " + name +
                                " has OCS splits or a rotation: the int8 ONNX form holds plain "
                                "codes only (export the float form)");
  if (m->codes.size(1) != cols || m->group_size != cols || m->step.numel() != m->codes.size(0))
    throw std::invalid_argument("matrix " + name +
                                " has group steps: the int8 ONNX form needs one step per row "
                                "(--granularity row or tensor)");
  const torch::Tensor c = m->codes.to(torch::kInt32);
  if (c.abs().max().item<int32_t>() > 127)
    throw std::invalid_argument("matrix " + name + " has codes beyond int8 (more than 8 bits)");
  return {c.to(torch::kChar), m->step.reshape({-1}).to(torch::kFloat)};
}

onnx::Attribute int_attr(const std::string& name, int64_t v) {
  onnx::Attribute a;
  a.name = name;
  a.i = v;
  return a;
}

}  // namespace

std::string onnx_model(const LstmLmImpl& model, const std::vector<QuantizedMatrix>* int8) {
  if (!model.expansion.empty())
    throw std::invalid_argument(
        "an OCS-expanded model has no plain ONNX LSTM form; save it with quantize "
        "--save-quantized (it loads folded) and export that file");
  const LstmLmConfig& c = model.config();
  if (c.projected())
    throw std::invalid_argument("a " + c.describe() +
                                " model has no ONNX export: ONNX's LSTM op has no projection "
                                "(W_hr); evaluate it with lmquant's engines");
  // The state inputs are LstmState's layout: h0, c0 [layers, batch, S], layer k reading its
  // first H_k columns (S = the largest H_k; every column when the layers are one size).
  const int64_t S = c.state_h_width(), L = c.layers, V = c.vocab, D = c.top();
  onnx::Graph g;
  g.name = "lmquant_lstm_lm";
  auto init = [&](const std::string& name, torch::Tensor t) {
    g.initializers.emplace_back(name, t.detach().cpu().contiguous());
  };
  auto node = [&](const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                  std::vector<onnx::Attribute> attrs = {}, std::string domain = "") {
    g.nodes.push_back({op, std::move(in), std::move(out), std::move(attrs), std::move(domain)});
  };
  const bool q8 = int8 && !int8->empty();
  init("encoder.weight", model.encoder.to(torch::kFloat));
  node("Gather", {"encoder.weight", "tokens"}, {"x0"}, {int_attr("axis", 0)});
  init("axes0", torch::tensor({int64_t{0}}));
  init("axes1", torch::tensor({int64_t{1}}));
  std::vector<std::string> hn, cn;
  std::string x = "x0";
  if (!c.uniform()) init("axes02", torch::tensor({int64_t{0}, int64_t{2}}));
  std::set<std::string> zeros;
  for (int64_t k = 0; k < L; ++k) {
    const std::string s = std::to_string(k);
    const int64_t H = c.cell(k);
    const std::string zero = "zero4H" + (H == S ? std::string() : "_" + s);  // the zero points
    if (q8 && zeros.insert(zero).second) init(zero, torch::zeros({1, 4 * H}, torch::kChar));
    if (q8) {
      // int8 codes transposed to [in, 4H] and [H, 4H], gate blocks (rows) re-ordered first.
      auto [wq, ws] = int8_rows(*int8, "input.l" + s, model.w_ih[k].size(1));
      auto [rq, rs] = int8_rows(*int8, "recurrent.l" + s, H);
      init("W" + s, onnx_gates(wq, H).t().contiguous().unsqueeze(0));
      init("R" + s, onnx_gates(rq, H).t().contiguous().unsqueeze(0));
      init("W_scale" + s, onnx_gates(ws.unsqueeze(1), H).reshape({1, -1}));
      init("R_scale" + s, onnx_gates(rs.unsqueeze(1), H).reshape({1, -1}));
    } else {
      init("W" + s, onnx_gates(model.w_ih[k], H).unsqueeze(0));
      init("R" + s, onnx_gates(model.w_hh[k], H).unsqueeze(0));
    }
    init("B" + s, torch::cat({onnx_gates(model.b_ih[k].unsqueeze(1), H).squeeze(1),
                              onnx_gates(model.b_hh[k].unsqueeze(1), H).squeeze(1)})
                      .unsqueeze(0));
    if (H == S) {
      init("start" + s, torch::tensor({k}));
      init("end" + s, torch::tensor({k + 1}));
      node("Slice", {"h0", "start" + s, "end" + s, "axes0"}, {"h0_" + s});
      node("Slice", {"c0", "start" + s, "end" + s, "axes0"}, {"c0_" + s});
    } else {  // layer k's rows and its first H_k columns
      init("start" + s, torch::tensor({k, int64_t{0}}));
      init("end" + s, torch::tensor({k + 1, H}));
      node("Slice", {"h0", "start" + s, "end" + s, "axes02"}, {"h0_" + s});
      node("Slice", {"c0", "start" + s, "end" + s, "axes02"}, {"c0_" + s});
    }
    const std::string hk = H == S ? "hn" + s : "hnk" + s, ck = H == S ? "cn" + s : "cnk" + s;
    if (q8)
      node("DynamicQuantizeLSTM",
           {x, "W" + s, "R" + s, "B" + s, "", "h0_" + s, "c0_" + s, "", "W_scale" + s, zero,
            "R_scale" + s, zero},
           {"Y" + s, hk, ck}, {int_attr("hidden_size", H)}, "com.microsoft");
    else
      node("LSTM", {x, "W" + s, "R" + s, "B" + s, "", "h0_" + s, "c0_" + s}, {"Y" + s, hk, ck},
           {int_attr("hidden_size", H)});
    if (H != S) {  // back to the state's width: zeros beyond H_k
      init("pad" + s, torch::tensor(std::vector<int64_t>{0, 0, 0, 0, 0, S - H}));
      node("Pad", {hk, "pad" + s}, {"hn" + s});
      node("Pad", {ck, "pad" + s}, {"cn" + s});
    }
    x = "y" + s;
    node("Squeeze", {"Y" + s, "axes1"}, {x});  // [seq, 1 direction, batch, H] → [seq, batch, H]
    hn.push_back("hn" + s);
    cn.push_back("cn" + s);
  }
  node("Concat", hn, {"h_n"}, {int_attr("axis", 0)});
  node("Concat", cn, {"c_n"}, {int_attr("axis", 0)});
  init("decoder.bias", model.decoder_bias.to(torch::kFloat));
  if (q8) {
    auto [dq, ds] = int8_rows(*int8, c.tied ? "embedding+decoder" : "decoder", D);
    init("decoder.codes.T", dq.t().contiguous());
    init("decoder.scale", ds);
    init("zeroV", torch::zeros({V}, torch::kChar));
    node("DynamicQuantizeMatMul", {x, "decoder.codes.T", "decoder.scale", "zeroV", "decoder.bias"},
         {"logits"}, {}, "com.microsoft");
  } else {
    init("decoder.weight.T", model.decoder_weight.detach().to(torch::kFloat).t().contiguous());
    node("MatMul", {x, "decoder.weight.T"}, {"decoded"});
    node("Add", {"decoded", "decoder.bias"}, {"logits"});
  }
  node("LogSoftmax", {"logits"}, {"logprobs"}, {int_attr("axis", -1)});
  const std::string Hs = std::to_string(S), Ls = std::to_string(L);
  g.inputs = {{"tokens", onnx::ElemType::kInt64, {"seq", "batch"}},
              {"h0", onnx::ElemType::kFloat, {Ls, "batch", Hs}},
              {"c0", onnx::ElemType::kFloat, {Ls, "batch", Hs}}};
  g.outputs = {{"logprobs", onnx::ElemType::kFloat, {"seq", "batch", std::to_string(V)}},
               {"h_n", onnx::ElemType::kFloat, {Ls, "batch", Hs}},
               {"c_n", onnx::ElemType::kFloat, {Ls, "batch", Hs}}};
  return onnx::serialize_model(g, 17, lmquant_version());
}

void save_onnx(const std::string& path, const LstmLmImpl& model,
               const std::vector<QuantizedMatrix>* int8) {
  write_file_atomic(path, onnx_model(model, int8));
}

}  // namespace lmquant
