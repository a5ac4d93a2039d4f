// lmquant's public C++ API in one include. Installed with `cmake --install`; consumers use
// find_package(lmquant) and link lmquant::lmquant. See README.md "Using lmquant as a library".
#pragma once
#include "corpus/corpus.h"          // locate_corpus, load_corpus, Corpus, Split
#include "corpus/spm_tokenizer.h"   // SpmTokenizer, train_spm
#include "corpus/tokenizer.h"       // parse_tokenizer
#include "lm/evaluate.h"            // evaluate (perplexity)
#include "lm/model_io.h"            // load_model, save_model
#include "lm/score.h"               // SentenceScorer
#include "quant/quantize_model.h"   // QuantConfig, quantize_model
#include "quant/quantized_io.h"     // save_quantized, load_any_model
#include "report/report.h"          // Record, markdown_table, csv
#include "util/runtime.h"           // configure_threads
