#include "export/onnx_proto.h"

#include <cstring>
#include <stdexcept>

namespace lmquant::onnx {

void Message::put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

Message& Message::varint(int field, uint64_t v) {
  put_varint(data_, static_cast<uint64_t>(field) << 3 | 0);
  put_varint(data_, v);
  return *this;
}

Message& Message::fixed32(int field, uint32_t v) {
  put_varint(data_, static_cast<uint64_t>(field) << 3 | 5);
  for (int i = 0; i < 4; ++i) data_.push_back(static_cast<char>(v >> (8 * i)));
  return *this;
}

Message& Message::bytes(int field, const std::string& b) {
  put_varint(data_, static_cast<uint64_t>(field) << 3 | 2);
  put_varint(data_, b.size());
  data_ += b;
  return *this;
}

Message& Message::packed(int field, const std::vector<int64_t>& v) {
  std::string body;
  for (int64_t x : v) put_varint(body, static_cast<uint64_t>(x));
  return bytes(field, body);
}

namespace {

ElemType elem_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat:
      return ElemType::kFloat;
    case torch::kLong:
      return ElemType::kInt64;
    case torch::kChar:
      return ElemType::kInt8;
    case torch::kByte:
      return ElemType::kUint8;
    case torch::kInt:
      return ElemType::kInt32;
    default:
      throw std::invalid_argument(std::string("no ONNX initializer of type ") + c10::toString(t));
  }
}

Message tensor_proto(const std::string& name, const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous().cpu();
  Message m;
  for (int64_t d : c.sizes()) m.varint(1, static_cast<uint64_t>(d));
  m.varint(2, static_cast<uint64_t>(elem_type(c.scalar_type())));
  m.bytes(8, name);
  m.bytes(9, std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
  return m;
}

Message value_info(const ValueInfo& v) {
  Message shape;
  for (const auto& d : v.dims) {
    Message dim;
    const bool number = !d.empty() && d.find_first_not_of("0123456789") == std::string::npos;
    if (number)
      dim.varint(1, std::stoull(d));
    else
      dim.bytes(2, d);
    shape.message(1, dim);
  }
  Message tensor;
  tensor.varint(1, static_cast<uint64_t>(v.type)).message(2, shape);
  Message type;
  type.message(1, tensor);
  Message m;
  m.bytes(1, v.name).message(2, type);
  return m;
}

Message attribute(const Attribute& a) {
  Message m;
  m.bytes(1, a.name);
  switch (a.kind) {
    case Attribute::Kind::kInt:
      m.varint(3, static_cast<uint64_t>(a.i)).varint(20, 2);
      break;
    case Attribute::Kind::kFloat: {
      uint32_t bits;
      std::memcpy(&bits, &a.f, 4);
      m.fixed32(2, bits).varint(20, 1);
      break;
    }
    case Attribute::Kind::kInts:
      for (int64_t x : a.ints) m.varint(8, static_cast<uint64_t>(x));
      m.varint(20, 7);
      break;
  }
  return m;
}

}  // namespace

std::string serialize_model(const Graph& g, int64_t opset, const std::string& producer_version) {
  Message graph;
  bool contrib = false;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    Message node;
    for (const auto& x : n.inputs) node.bytes(1, x);
    for (const auto& x : n.outputs) node.bytes(2, x);
    node.bytes(3, n.op_type + "_" + std::to_string(i)).bytes(4, n.op_type);
    for (const auto& a : n.attributes) node.message(5, attribute(a));
    if (!n.domain.empty()) {
      node.bytes(7, n.domain);
      contrib = true;
    }
    graph.message(1, node);
  }
  graph.bytes(2, g.name);
  for (const auto& [name, t] : g.initializers) graph.message(5, tensor_proto(name, t));
  for (const auto& v : g.inputs) graph.message(11, value_info(v));
  for (const auto& v : g.outputs) graph.message(12, value_info(v));
  Message model;
  model.varint(1, 8).bytes(2, "lmquant").bytes(3, producer_version).message(7, graph);
  Message ai;
  ai.bytes(1, "").varint(2, static_cast<uint64_t>(opset));
  model.message(8, ai);
  if (contrib) {
    Message ms;
    ms.bytes(1, "com.microsoft").varint(2, 1);
    model.message(8, ms);
  }
  return model.data();
}

}  // namespace lmquant::onnx
