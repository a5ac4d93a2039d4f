// The pickle machine that reads torch.save files (lm/torch_pickle.h), on pickles written by hand
// opcode by opcode; whole files made by PyTorch are tested in tests/python/test_pytorch_files.py.
#include "lm/torch_pickle.h"

#include <gtest/gtest.h>

#include <string>

#include "test_utils.h"

namespace lmquant {
namespace {

using Kind = PyValue::Kind;
using namespace std::string_literals;  // pickles hold NUL bytes
using Arena = std::vector<std::unique_ptr<PyValue>>;

std::string u32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
std::string str(const std::string& s) { return "X" + u32(s.size()) + s; }  // BINUNICODE

// A storage of `n` floats 0, 1, ..., n-1 for every persistent id.
PyValue* float_storage(Arena& arena, int64_t n) {
  arena.push_back(std::make_unique<PyValue>());
  arena.back()->kind = Kind::kStorage;
  arena.back()->tensor = torch::arange(n, torch::kFloat);
  return arena.back().get();
}

PyValue* run(const std::string& body, Arena& arena, int64_t storage_numel = 6) {
  return run_pickle("\x80\x02" + body + ".", arena,
                    [&](const PyValue&) { return float_storage(arena, storage_numel); });
}

// _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).
std::string tensor(const std::string& offset, const std::string& size, const std::string& stride) {
  return "ctorch._utils\n_rebuild_tensor_v2\n(N" /* pid */ "Q" + offset + size + stride +
         "\x89"
         "ccollections\nOrderedDict\n)RtR";
}

TEST(TorchPickle, ContainersScalarsAndMemoAreRead) {
  Arena arena;
  // {"a": [1, -2, 300, 2.5, True, None], "b": "x", "c": <memo 0: the list again>}
  const std::string list = "](K\x01\x8a\x01\xfeM\x2c\x01G\x40\x04\x00\x00\x00\x00\x00\x00\x88Ne"s;
  const PyValue* v =
      run("}(" + str("a") + list + "q\x00"s + str("b") + str("x") + str("c") + "h\x00u"s, arena);
  ASSERT_EQ(v->kind, Kind::kDict);
  const PyValue* a = v->get("a");
  ASSERT_TRUE(a && a->kind == Kind::kList);
  ASSERT_EQ(a->items.size(), 6u);
  EXPECT_EQ(a->items[0]->integer, 1);
  EXPECT_EQ(a->items[1]->integer, -2);  // LONG1 0xfe: two's complement
  EXPECT_EQ(a->items[2]->integer, 300);
  EXPECT_EQ(a->items[3]->real, 2.5);  // BINFLOAT is big-endian
  EXPECT_TRUE(a->items[4]->boolean);
  EXPECT_EQ(a->items[5]->kind, Kind::kNone);
  EXPECT_EQ(v->get("b")->text, "x");
  EXPECT_EQ(v->get("c"), a);  // the memo gives the same object back
}

TEST(TorchPickle, UnknownClassesBecomePlainObjectsWithTheirState) {
  Arena arena;
  // model.RNNModel() with BUILD {"ntoken": 5}: what torch.save(model) writes for a module.
  const PyValue* v = run("cmodel\nRNNModel\n)\x81}" + str("ntoken") + "K\x05sb", arena);
  ASSERT_EQ(v->kind, Kind::kObject);
  EXPECT_EQ(v->text, "model.RNNModel");
  ASSERT_TRUE(v->state && v->state->kind == Kind::kDict);
  EXPECT_EQ(v->state->get("ntoken")->integer, 5);
  // collections.OrderedDict() is a dict; BUILD gives it attributes (a state_dict's _metadata).
  const PyValue* d =
      run("ccollections\nOrderedDict\n)R" + str("k") + "Ns}" + str("_metadata") + "}sb", arena);
  ASSERT_EQ(d->kind, Kind::kDict);
  EXPECT_EQ(d->text, "collections.OrderedDict");
  EXPECT_TRUE(d->get("k"));
  ASSERT_TRUE(d->state);
  EXPECT_TRUE(d->state->get("_metadata"));
}

TEST(TorchPickle, TensorsAreStridedViewsCheckedAgainstTheirStorage) {
  Arena arena;
  // A 2×3 row-major view of storage [0..5]: element (1, 2) is 5.
  const PyValue* t = run(tensor("K\x00"s, "K\x02K\x03\x86", "K\x03K\x01\x86"), arena);
  ASSERT_EQ(t->kind, Kind::kTensor);
  EXPECT_TRUE(torch::equal(t->tensor, torch::arange(6, torch::kFloat).view({2, 3})));
  // Offset 1, size 2, stride 2: elements 1 and 3.
  t = run(tensor("K\x01", "K\x02\x85", "K\x02\x85"), arena);
  EXPECT_TRUE(torch::equal(t->tensor, torch::tensor({1.f, 3.f})));
  // The same view of 6 elements reaching index 6 (offset 2 + 2·2), or a huge stride: refused.
  EXPECT_THROW_MESSAGE(run(tensor("K\x02", "K\x03\x85", "K\x02\x85"), arena), std::runtime_error,
                       "reaches past its storage of 6");
  EXPECT_THROW_MESSAGE(run(tensor("K\x00"s, "K\x02\x85", "J\xff\xff\xff\x7f\x85"), arena),
                       std::runtime_error, "reaches past its storage");
  // Parameter(tensor) is the tensor.
  t = run("ctorch._utils\n_rebuild_parameter\n(" + tensor("K\x00"s, "K\x06\x85", "K\x01\x85") +
              "\x88)tR",
          arena);
  EXPECT_EQ(t->kind, Kind::kTensor);
  EXPECT_EQ(t->tensor.numel(), 6);
}

TEST(TorchPickle, DamagedPicklesAreRefusedBeforeAllocating) {
  Arena arena;
  // A string announcing 4 GB in a pickle of a few bytes (a fuzz finding against LibTorch's own
  // unpickler, which reserved it first).
  EXPECT_THROW_MESSAGE(run("X" + u32(0xfffffff0u) + "abc", arena), std::runtime_error,
                       "runs past the end of data.pkl");
  // A memo index of 10^9 (LibTorch resized its memo table to it: 22 GB).
  EXPECT_THROW_MESSAGE(run("Nr" + u32(1000000000u), arena), std::runtime_error, "memo index");
  EXPECT_THROW_MESSAGE(run("h\x05", arena), std::runtime_error, "read before written");
  EXPECT_THROW_MESSAGE(run("a", arena), std::runtime_error, "stack underflow");
  EXPECT_THROW_MESSAGE(run("(Ns", arena), std::runtime_error, "stack underflow");
  EXPECT_THROW_MESSAGE(run("e", arena), std::runtime_error, "MARK missing");
  EXPECT_THROW_MESSAGE(run_pickle("\x80\x02N", arena, {}), std::runtime_error, "runs past the end");
  EXPECT_THROW_MESSAGE(run("\xff", arena), std::runtime_error, "pickle opcode 0xff");
  EXPECT_THROW_MESSAGE(run("ctorch._utils\n_rebuild_qtensor\n)R", arena), std::runtime_error,
                       "quantized, sparse");
}

TEST(TorchPickle, DeepNestingAndCyclesNeitherRecurseNorLeak) {
  Arena arena;
  // 10^6 nested 1-tuples (one byte each) and a list that holds itself: values live in the arena,
  // so neither building nor freeing them recurses.
  const PyValue* v = run("N" + std::string(1000000, '\x85'), arena);
  EXPECT_EQ(v->kind, Kind::kTuple);
  v = run("]q\x00h\x00"s + "a", arena);
  ASSERT_EQ(v->items.size(), 1u);
  EXPECT_EQ(v->items[0], v);
}

TEST(TorchPickle, LegacyAndForeignFilesAreNamed) {
  const std::string legacy("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  EXPECT_THROW_MESSAGE(TorchPickle(legacy, "old.pt"), std::runtime_error,
                       "legacy format (before PyTorch 1.6); re-save");
  EXPECT_THROW_MESSAGE(TorchPickle("PK\x03\x04garbage", "x.pt"), std::runtime_error,
                       "x.pt: not a readable PyTorch file");
}

}  // namespace
}  // namespace lmquant
