// lmquant's public C++ API in one include. Installed with `cmake --install`; consumers use
// find_package(lmquant) and link lmquant::lmquant. See README.md "Using lmquant as a library".
#pragma once
#include "corpus/corpus.h"                // locate_corpus, load_corpus, Corpus, Split
#include "corpus/spm_tokenizer.h"         // SpmTokenizer, train_spm
#include "corpus/tokenizer.h"             // parse_tokenizer
#include "engine/int8_engine.h"           // int8_engine: hooks running a quantized file in int8
#include "experiment/bench.h"             // run_bench
#include "experiment/experiment.h"        // EvalContext: quantize + evaluate one configuration
#include "experiment/joint_allocation.h"  // choose_jointly: widths, granularities, row budgets
#include "experiment/main_job.h"          // run_main_job, write_main_report, ensure_default_model
#include "experiment/mixed_precision.h"   // choose_bits: bits per matrix under a budget
#include "experiment/sweep.h"             // SweepGrid, run_sweep
#include "lm/evaluate.h"                  // evaluate, perplexity_of_loss
#include "lm/matrices.h"                  // named_matrices, collect_matrix_inputs
#include "lm/model_io.h"                  // save_model (and load_model for unquantized files)
#include "lm/score.h"                     // SentenceScorer
#include "quant/quantize_model.h"         // QuantConfig, quantize_model
#include "quant/quantized_io.h"           // load_any_model: the one loader for every model file
#include "report/bootstrap.h"             // paired_bootstrap
#include "report/record.h"                // Record, Provenance
#include "report/report.h"                // markdown_table, csv, read_records
#include "util/runtime.h"                 // configure_threads
