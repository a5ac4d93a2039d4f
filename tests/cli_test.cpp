// The CLI end to end: exit codes, one-line errors naming the flag or file, JSON output.
#include <nlohmann/json.hpp>

#include "lm/model_io.h"
#include "test_utils.h"

using lmquant::test::run_cli;
using lmquant::test::TempDir;
using lmquant::test::tiny_corpus_dir;

TEST(Cli, HelpAndUnknownCommand) {
  auto h = run_cli("--help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("eval"), std::string::npos);
  auto u = run_cli("frobnicate");
  EXPECT_EQ(u.code, 2);
  EXPECT_NE(u.err.find("error: unknown command 'frobnicate'; valid commands:"), std::string::npos);
}

TEST(Cli, BadOptionsAreOneLineErrors) {
  auto r = run_cli("eval --model x --split dev --corpus " + tiny_corpus_dir());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("error: unknown split 'dev'; valid values: train, valid, test"), std::string::npos) << r.err;
  r = run_cli("eval --corpus " + tiny_corpus_dir());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--model"), std::string::npos) << r.err;
  r = run_cli("eval --model /nonexistent/m.lmq --corpus " + tiny_corpus_dir());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("error: cannot read /nonexistent/m.lmq"), std::string::npos) << r.err;
  r = run_cli("corpus --corpus /nonexistent/dir");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("error: --corpus /nonexistent/dir"), std::string::npos) << r.err;
  r = run_cli("train --out x.lmq --preset huge --corpus " + tiny_corpus_dir());
  EXPECT_NE(r.err.find("--preset huge: valid values: small, medium, large"), std::string::npos) << r.err;
}

TEST(Cli, TrainThenEvalJson) {
  TempDir tmp;
  auto t = run_cli("train -q --corpus " + tiny_corpus_dir() + " --emb 8 --hidden 8 --epochs 1 " +
                   "--batch 4 --bptt 5 --out " + tmp.file("m.lmq"));
  ASSERT_EQ(t.code, 0) << t.err;
  auto e = run_cli("eval --json --batch 2 --corpus " + tiny_corpus_dir() + " --model " + tmp.file("m.lmq"));
  ASSERT_EQ(e.code, 0) << e.err;
  auto j = nlohmann::json::parse(e.out);
  for (auto k : {"perplexity", "loss", "tokens", "split", "seconds", "tokens_per_s"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["split"], "test");
  EXPECT_GT(j["perplexity"].get<double>(), 1.0);
}
