// The sentencepiece tokenizer: training is deterministic, encode/decode round-trips, WikiText's
// <unk> stays one piece, bad model files give clear errors, corpora and checkpoints carry the
// tokenizer, and word-normalised perplexity is per-token perplexity for the word tokenizer.
#include "corpus/spm_tokenizer.h"

#include <cmath>
#include <filesystem>

#include "corpus/corpus.h"
#include "corpus/word_tokenizer.h"
#include "lm/evaluate.h"
#include "lm/model_io.h"
#include "lm/score.h"
#include "lm/train.h"
#include "test_utils.h"
#include "util/atomic_file.h"

using namespace lmquant;
using lmquant::test::TempDir;
using lmquant::test::tiny_corpus_dir;

namespace {

std::string tiny_train() { return tiny_corpus_dir() + "/train.txt"; }

SpmTrainOptions small(const std::string& type = "unigram") {
  SpmTrainOptions o;
  o.type = type;
  o.vocab_size = 60;
  return o;
}

// Collapses whitespace runs to one space and trims: sentencepiece's own normalisation.
std::string squeeze(const std::string& s) {
  std::string out;
  for (const auto& w : split_words(s)) out += (out.empty() ? "" : " ") + w;
  return out;
}

}  // namespace

TEST(SpmTokenizer, TrainingIsDeterministic) {
  TempDir tmp;
  for (const std::string type : {"unigram", "bpe"}) {
    const std::string out = tmp.file(type + ".model");
    train_spm(tiny_train(), out, small(type));
    const std::string first = read_file(out);
    train_spm(tiny_train(), out, small(type));
    EXPECT_EQ(read_file(out), first) << type;
    const SpmTokenizer t = SpmTokenizer::load(out);
    EXPECT_EQ(t.size(), 60);
    EXPECT_EQ(t.id(), "spm:" + t.sha256());
    EXPECT_EQ(t.vocab().word(t.eos_id()), "</s>");
  }
  // A path with a space goes through a private folder; the pieces are the same.
  train_spm(tiny_train(), tmp.file("with space.model"), small());
  EXPECT_EQ(SpmTokenizer::load(tmp.file("with space.model")).vocab().hash(),
            SpmTokenizer::load(tmp.file("unigram.model")).vocab().hash());
  // Nothing but the models is left (no .partial or .vocab files).
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp.path())) files += !e.is_directory();
  EXPECT_EQ(files, 3u);
}

TEST(SpmTokenizer, RoundTripAndUnkPiece) {
  TempDir tmp;
  train_spm(tiny_train(), tmp.file("m.model"), small());
  const SpmTokenizer t = SpmTokenizer::load(tmp.file("m.model"));
  const std::string text = read_file(tiny_train());
  int lines = 0;
  for_each_line(text, [&](std::string_view line) {
    const auto ids = t.encode(line);
    EXPECT_EQ(t.decode(ids), squeeze(std::string(line))) << line;
    ++lines;
  });
  EXPECT_GT(lines, 3);
  // WikiText's literal <unk> is one piece; sentencepiece's own unknown piece is <spm-unk>.
  const auto pieces = t.encode_pieces("the <unk> sang");
  EXPECT_NE(std::find(pieces.begin(), pieces.end(), "<unk>"), pieces.end());
  EXPECT_EQ(t.vocab().word(t.unk_id()), "<spm-unk>");
  const auto unseen = t.encode("\xE2\x82\xAC");  // €, never in the training text
  ASSERT_EQ(unseen.size(), 2u);                  // "▁" and the unknown piece
  EXPECT_EQ(unseen[1], t.unk_id());
  EXPECT_THROW(t.decode({-1}), std::out_of_range);
}

TEST(SpmTokenizer, BadModelFilesAndOptions) {
  TempDir tmp;
  EXPECT_THROW_MESSAGE(SpmTokenizer::load(tmp.file("missing.model")), std::runtime_error,
                       "missing.model");
  lmquant::test::write_text(tmp.file("empty.model"), "");
  EXPECT_THROW_MESSAGE(SpmTokenizer::load(tmp.file("empty.model")), std::runtime_error,
                       "empty.model is empty");
  lmquant::test::write_text(tmp.file("junk.model"), "this is not a protobuf \x01\x02\x03 at all");
  EXPECT_THROW_MESSAGE(SpmTokenizer::load(tmp.file("junk.model")), std::runtime_error,
                       "junk.model is not a sentencepiece model");
  // A truncated real model.
  train_spm(tiny_train(), tmp.file("m.model"), small());
  const std::string bytes = read_file(tmp.file("m.model"));
  lmquant::test::write_text(tmp.file("cut.model"), bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW_MESSAGE(SpmTokenizer::load(tmp.file("cut.model")), std::runtime_error,
                       "cut.model is not a sentencepiece model");
  SpmTrainOptions o = small("wordpiece");
  EXPECT_THROW_MESSAGE(train_spm(tiny_train(), tmp.file("x.model"), o), std::invalid_argument,
                       "valid values: unigram, bpe");
  o = small();
  o.vocab_size = 100000;  // far more than the tiny text supports: sentencepiece says so
  EXPECT_THROW_MESSAGE(train_spm(tiny_train(), tmp.file("x.model"), o), std::runtime_error,
                       "sentencepiece training on");
  EXPECT_FALSE(std::filesystem::exists(tmp.file("x.model")));
  EXPECT_THROW_MESSAGE(train_spm(tmp.file("none.txt"), tmp.file("x.model"), small()),
                       std::runtime_error, "none.txt does not exist");
  EXPECT_THROW_MESSAGE(parse_tokenizer("spm"), std::invalid_argument,
                       "valid values: word, spm:PATH");
}

TEST(SpmTokenizer, CorpusCountsWordsAndEndsLinesWithEos) {
  TempDir tmp;
  train_spm(tiny_train(), tmp.file("m.model"), small());
  const auto loc = locate_corpus(tiny_corpus_dir(), {});
  const Corpus words = load_word_corpus(loc);
  const Corpus pieces = load_corpus(loc, parse_tokenizer("spm:" + tmp.file("m.model")));
  const SpmTokenizer t = SpmTokenizer::load(tmp.file("m.model"));
  EXPECT_EQ(words.tokenizer, "word");
  EXPECT_EQ(pieces.tokenizer, t.id());
  EXPECT_EQ(pieces.vocab.size(), 60);
  for (Split s : {Split::kTrain, Split::kValid, Split::kTest}) {
    EXPECT_EQ(words.words(s), words.tokens(s));    // word tokenizer: one token per word
    EXPECT_EQ(pieces.words(s), words.tokens(s));   // the same words under sentencepiece
    EXPECT_GT(pieces.tokens(s), pieces.words(s));  // more pieces than words
    // As many </s> as the word stream has <eos>.
    const int64_t eos_w = (words.split(s) == words.vocab.find(kEos)).sum().item<int64_t>();
    const int64_t eos_p = (pieces.split(s) == t.eos_id()).sum().item<int64_t>();
    EXPECT_EQ(eos_p, eos_w);
  }
}

TEST(SpmTokenizer, WordNormalisedPerplexity) {
  // Word tokenizer: tokens == words, so it is the per-token perplexity exactly.
  EXPECT_DOUBLE_EQ(word_normalised_perplexity(5.1, 1234, 1234), std::exp(5.1));
  // The worked example in evaluate.h: 3 pieces per 2 words at 3.0 nats per piece.
  EXPECT_NEAR(word_normalised_perplexity(3.0, 3000, 2000), std::exp(4.5), 1e-9);
  EXPECT_THROW(word_normalised_perplexity(1.0, 0, 10), std::invalid_argument);
  // And the sentence scorer of a word model reports the same two numbers.
  const Corpus c = load_word_corpus(locate_corpus(tiny_corpus_dir(), {}));
  LstmLmConfig cfg;
  cfg.vocab = c.vocab.size();
  cfg.emb = cfg.hidden = 8;
  torch::manual_seed(3);
  SentenceScorer scorer(LstmLm(cfg), c.vocab);
  const SentenceScore s = scorer.score("the sparrow sang");
  EXPECT_EQ(s.words, s.tokens);
  EXPECT_DOUBLE_EQ(s.word_perplexity, s.perplexity);
}

TEST(SpmTokenizer, CheckpointRecordsTokenizerAndRefusesAnother) {
  TempDir tmp;
  train_spm(tiny_train(), tmp.file("a.model"), small());
  train_spm(tiny_train(), tmp.file("b.model"), small("bpe"));
  const auto loc = locate_corpus(tiny_corpus_dir(), {});
  const Corpus a = load_corpus(loc, parse_tokenizer("spm:" + tmp.file("a.model")));
  const Corpus b = load_corpus(loc, parse_tokenizer("spm:" + tmp.file("b.model")));
  const Corpus w = load_word_corpus(loc);
  LstmLmConfig cfg;
  cfg.vocab = a.vocab.size();
  cfg.emb = cfg.hidden = 8;
  torch::manual_seed(4);
  LstmLm m(cfg);
  TrainOptions t;
  t.epochs = 1;
  t.batch = 4;
  t.bptt = 5;
  t.out = tmp.file("m.lmq");
  train(m, a, t);
  const LoadedModel l = load_model(tmp.file("m.lmq"));
  EXPECT_EQ(l.tokenizer, a.tokenizer);
  EXPECT_EQ(l.meta.value("tokenizer_path", ""), tmp.file("a.model"));
  EXPECT_NO_THROW(check_corpus_matches(l, a));
  EXPECT_THROW_MESSAGE(check_corpus_matches(l, b), TokenizerMismatch,
                       "(its file: " + tmp.file("a.model") + ")");
  EXPECT_THROW_MESSAGE(check_corpus_matches(l, w), std::runtime_error,
                       "but the corpus is tokenized with the word tokenizer");
  // The sentence scorer encodes with the model's pieces and reports per-word perplexity.
  SentenceScorer scorer(l.model, SpmTokenizer::load(tmp.file("a.model")));
  const SentenceScore s = scorer.score("the sparrow sang");
  EXPECT_EQ(s.words, 4);
  EXPECT_GT(s.tokens, s.words);
  EXPECT_NEAR(std::log(s.word_perplexity) * s.words, std::log(s.perplexity) * s.tokens, 1e-6);
}
