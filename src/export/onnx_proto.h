// The few ONNX protobuf messages an exported LSTM LM needs, written directly in the protobuf wire
// format (no libonnx/libprotobuf: their protobuf would clash with LibTorch's, as sentencepiece's
// does). Field numbers are onnx/onnx.proto's (IR version 8):
//
//   ModelProto      1 ir_version, 2 producer_name, 3 producer_version, 7 graph, 8 opset_import
//   OperatorSetId   1 domain, 2 version
//   GraphProto      1 node, 2 name, 5 initializer, 11 input, 12 output
//   NodeProto       1 input, 2 output, 3 name, 4 op_type, 5 attribute, 7 domain
//   AttributeProto  1 name, 2 f, 3 i, 8 ints, 20 type (FLOAT 1, INT 2, INTS 7)
//   TensorProto     1 dims, 2 data_type (FLOAT 1, UINT8 2, INT8 3, INT32 6, INT64 7), 8 name,
//                   9 raw_data (little-endian)
//   ValueInfoProto  1 name, 2 type;  TypeProto 1 tensor_type;  TypeProto.Tensor 1 elem_type,
//                   2 shape;  TensorShapeProto 1 dim;  Dimension 1 dim_value, 2 dim_param
//
// Wire format (protobuf encoding guide): each field is a varint key (field << 3 | wire type) then
// a varint (type 0), 4 bytes (type 5) or a varint length and that many bytes (type 2: strings,
// bytes, nested messages, packed repeated integers). Worked example: field 1 = 150 as a varint is
// 08 96 01 (key 1 << 3 | 0 = 0x08; 150 = 0b1_0010110 → 0x96 0x01).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lmquant::onnx {

// One protobuf message being written.
class Message {
 public:
  Message& varint(int field, uint64_t v);
  Message& fixed32(int field, uint32_t v);
  Message& bytes(int field, const std::string& b);  // strings, bytes and nested messages
  Message& message(int field, const Message& m) { return bytes(field, m.data_); }
  Message& packed(int field, const std::vector<int64_t>& v);
  const std::string& data() const { return data_; }

 private:
  static void put_varint(std::string& out, uint64_t v);
  std::string data_;
};

enum class ElemType : int { kFloat = 1, kUint8 = 2, kInt8 = 3, kInt32 = 6, kInt64 = 7 };

struct Attribute {
  std::string name;
  enum class Kind { kInt, kFloat, kInts } kind = Kind::kInt;
  int64_t i = 0;
  float f = 0;
  std::vector<int64_t> ints;
};

struct Node {
  std::string op_type;
  std::vector<std::string> inputs, outputs;  // "" is an omitted optional input
  std::vector<Attribute> attributes;
  std::string domain;  // "" for the default ONNX domain, "com.microsoft" for contrib ops
};

// A graph input or output: elem type and dims, each a size or a symbolic name.
struct ValueInfo {
  std::string name;
  ElemType type = ElemType::kFloat;
  std::vector<std::string> dims;  // "35" is a size, "seq" a symbol
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;
  std::vector<std::pair<std::string, torch::Tensor>>
      initializers;  // float32/int64/int8/uint8/int32
  std::vector<ValueInfo> inputs, outputs;
};

// The serialized ModelProto: IR version 8, the default domain at `opset` (and com.microsoft at
// 1 when a node uses it), producer "lmquant".
std::string serialize_model(const Graph& g, int64_t opset, const std::string& producer_version);

}  // namespace lmquant::onnx
