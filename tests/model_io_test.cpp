// Checkpoints (lmquant format) and PyTorch state_dict import.
#include "lm/model_io.h"

#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "test_utils.h"
#include "util/atomic_file.h"

using namespace lmquant;
using lmquant::test::TempDir;

namespace {

LstmLm small_model(bool tied = false) {
  torch::manual_seed(11);
  LstmLmConfig c;
  c.vocab = 13;
  c.emb = c.hidden = 6;
  c.tied = tied;
  return LstmLm(c);
}

// The process's peak resident memory so far, in KiB.
long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

void write_bytes(const std::string& path, const std::string& b) {
  std::ofstream(path, std::ios::binary).write(b.data(), b.size());
}

// A PyTorch-format state_dict (the zip archive torch.save writes), from C++.
void save_pytorch(const std::string& path, const LstmLm& m, const std::string& drop = "",
                  const std::string& misshape = "") {
  c10::Dict<std::string, torch::Tensor> d;
  for (const auto& [name, t] : m->named_weights()) {
    if (name == drop) continue;
    d.insert(name, name == misshape ? torch::zeros({2, 2}) : t.detach().clone());
  }
  auto bytes = torch::pickle_save(c10::IValue(d));
  write_bytes(path, std::string(bytes.begin(), bytes.end()));
}

}  // namespace

TEST(Checkpoint, RoundTripIsBitExact) {
  TempDir tmp;
  for (bool tied : {false, true}) {
    LstmLm m = small_model(tied);
    Vocab v;
    for (int i = 0; i < 13; ++i) v.add("w" + std::to_string(i));
    save_model(tmp.file("m.lmq"), m, &v, {{"note", "x"}});
    LoadedModel l = load_model(tmp.file("m.lmq"));
    EXPECT_EQ(l.format, "lmquant");
    EXPECT_EQ(l.model->config().tied, tied);
    EXPECT_EQ(l.vocab_hash, v.hash());
    EXPECT_EQ(l.vocab.size(), 13u);
    EXPECT_EQ(l.meta["note"], "x");
    auto a = m->named_weights(), b = l.model->named_weights();
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
    check_vocab_matches(l, v);
    Vocab other = v;
    other.add("extra");
    EXPECT_THROW_MESSAGE(check_vocab_matches(l, other), std::runtime_error, "vocabulary of 13");
  }
}

TEST(Checkpoint, TruncatedCorruptAndForeignFilesAreRefused) {
  TempDir tmp;
  LstmLm m = small_model();
  save_model(tmp.file("m.lmq"), m, nullptr);
  const std::string good = read_file(tmp.file("m.lmq"));
  write_bytes(tmp.file("trunc.lmq"), good.substr(0, good.size() - 100));
  EXPECT_THROW_MESSAGE(load_model(tmp.file("trunc.lmq")), std::runtime_error, "truncated");
  write_bytes(tmp.file("head.lmq"), good.substr(0, 40));
  EXPECT_THROW_MESSAGE(load_model(tmp.file("head.lmq")), std::runtime_error, "truncated");
  std::string bad = good;
  bad[bad.size() - 7] ^= 0x55;
  write_bytes(tmp.file("corrupt.lmq"), bad);
  EXPECT_THROW_MESSAGE(load_model(tmp.file("corrupt.lmq")), std::runtime_error, "corrupt");
  write_bytes(tmp.file("junk.bin"), "hello world, not a model");
  EXPECT_THROW_MESSAGE(load_model(tmp.file("junk.bin")), std::runtime_error, "neither");
  EXPECT_THROW_MESSAGE(load_model(tmp.file("missing.lmq")), std::runtime_error, "missing.lmq");
}

TEST(Checkpoint, NanWeightsAreRefused) {
  TempDir tmp;
  LstmLm m = small_model();
  {
    torch::NoGradGuard g;
    m->w_hh[1][0][0] = std::nanf("");
  }
  save_model(tmp.file("nan.lmq"), m, nullptr);
  EXPECT_THROW_MESSAGE(load_model(tmp.file("nan.lmq")), std::runtime_error, "rnn.weight_hh_l1");
}

TEST(PyTorchImport, InfersShapesAndTying) {
  TempDir tmp;
  for (bool tied : {false, true}) {
    LstmLm m = small_model(tied);
    save_pytorch(tmp.file("sd.pt"), m);
    LoadedModel l = load_model(tmp.file("sd.pt"));
    EXPECT_EQ(l.format, "pytorch");
    EXPECT_EQ(l.model->config().vocab, 13);
    EXPECT_EQ(l.model->config().layers, 2);
    EXPECT_EQ(l.model->config().tied, tied);
    auto a = m->named_weights(), b = l.model->named_weights();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second));
  }
}

TEST(PyTorchImport, MissingAndMisshapenKeysAreNamed) {
  TempDir tmp;
  LstmLm m = small_model();
  save_pytorch(tmp.file("missing.pt"), m, "rnn.bias_hh_l1");
  EXPECT_THROW_MESSAGE(load_model(tmp.file("missing.pt")), std::runtime_error, "rnn.bias_hh_l1");
  save_pytorch(tmp.file("shape.pt"), m, "", "rnn.weight_hh_l0");
  EXPECT_THROW_MESSAGE(load_model(tmp.file("shape.pt")), std::runtime_error, "rnn.weight_hh_l0");
  write_bytes(tmp.file("zip.pt"), std::string("PK\x03\x04garbage", 11));
  EXPECT_THROW_MESSAGE(load_model(tmp.file("zip.pt")), std::runtime_error,
                       "not a readable PyTorch file");
}

TEST(PyTorchImport, ImpossibleStringLengthIsRefusedBeforeAllocating) {
  // Found by tools/fuzz.sh: a 2.7 KB torch.save archive whose pickle announces a 1.9 GB string
  // (and whose first record claims to be compressed). LibTorch alone reserved the 1.9 GB before
  // failing; lmquant checks the zip directory and every length first (the string alone:
  // tests/torch_pickle_test.cpp).
  const std::string f = std::string(LMQUANT_TEST_DATA_DIR) + "/pytorch_huge_string.pt";
  const long peak_before = peak_rss_kb();
  EXPECT_THROW_MESSAGE(load_model(f), std::runtime_error, "not a readable PyTorch file");
  // Refused before allocating: the peak did not grow by anything near the 1.9 GB announced.
  EXPECT_LT(peak_rss_kb() - peak_before, 256 * 1024);
  // Also found by fuzzing: a LONG_BINPUT memo index of ~10^9 made LibTorch's unpickler resize its
  // memo table to 22 GB.
  EXPECT_THROW_MESSAGE(load_model(std::string(LMQUANT_TEST_DATA_DIR) + "/pytorch_memo_index.pt"),
                       std::runtime_error, "memo index");
  // And: a zip directory pointing past the end of the file (LibTorch's reader read freed memory).
  EXPECT_THROW_MESSAGE(load_model(std::string(LMQUANT_TEST_DATA_DIR) + "/pytorch_zip_outside.pt"),
                       std::runtime_error, "not a readable PyTorch file");
}
