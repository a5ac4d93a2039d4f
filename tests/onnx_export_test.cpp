// ONNX export (export/onnx_proto.h, export/onnx_export.h): the wire format's worked example, the
// graph's shape, and the refusals. Run in ONNX Runtime against lmquant's perplexity:
// tests/python/test_onnx_export.py.
#include "export/onnx_export.h"

#include <gtest/gtest.h>

#include "export/onnx_proto.h"
#include "test_utils.h"

namespace lmquant {
namespace {

TEST(OnnxProto, WireFormatWorkedExample) {
  // The header's example: field 1 = 150 is 08 96 01.
  onnx::Message m;
  m.varint(1, 150);
  EXPECT_EQ(m.data(), std::string("\x08\x96\x01", 3));
  // A string field: key (2 << 3 | 2 = 0x12), length, bytes; packed integers likewise.
  onnx::Message s;
  s.bytes(2, "ab").packed(3, {1, 300});
  EXPECT_EQ(s.data(), std::string("\x12\x02"
                                  "ab"
                                  "\x1a\x03\x01\xac\x02",
                                  9));
  // A negative int64 is ten bytes of two's complement (protobuf's int64 encoding).
  onnx::Message n;
  n.varint(3, static_cast<uint64_t>(int64_t{-1}));
  EXPECT_EQ(n.data().size(), 11u);
}

TEST(OnnxExport, GraphHoldsTheModelsWeightsInOnnxGateOrder) {
  LstmLm m = test::tiny_lstm(/*vocab=*/13, /*seed=*/1);
  const std::string bytes = onnx_model(*m);
  // Every weight travels whole: the file is at least the float weights' size.
  int64_t weights = 0;
  for (const auto& [name, t] : m->named_weights()) weights += t.numel();
  EXPECT_GT(static_cast<int64_t>(bytes.size()), 4 * weights);
  for (const char* name : {"encoder.weight", "W0", "R1", "B1", "decoder.weight.T", "LogSoftmax",
                           "logprobs", "h_n", "c_n"})
    EXPECT_NE(bytes.find(name), std::string::npos) << name;
  // W0's first rows are gate i, then gate o (PyTorch's fourth block): find gate o's first
  // weight right after gate i's block in the raw data.
  const int64_t H = m->config().hidden, E = m->config().emb;
  const torch::Tensor w = m->w_ih[0].contiguous();
  const std::string gate_i(reinterpret_cast<const char*>(w.data_ptr<float>()), 4 * H * E);
  const std::string gate_o(reinterpret_cast<const char*>(w[3 * H].data_ptr<float>()), 4 * E);
  const size_t at = bytes.find(gate_i);
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(bytes.compare(at + gate_i.size(), gate_o.size(), gate_o), 0);
}

TEST(OnnxExport, AnOcsExpandedModelIsRefused) {
  LstmLm m = test::tiny_lstm(13, 1);
  m->expansion.decoder_idx = torch::tensor({int64_t{0}});
  EXPECT_THROW_MESSAGE(onnx_model(*m), std::invalid_argument, "--save-quantized");
}

}  // namespace
}  // namespace lmquant
