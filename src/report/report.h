// Views of records (report/record.h): Markdown, console and CSV tables, JSON (the records
// themselves). A report directory (report.md, results.csv,
// results.json, plots) is staged in a temporary folder and renamed into place whole, so it is
// never left half-written.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report/record.h"

namespace lmquant {

// A table as text: `markdown` gives a GitHub table, else console columns padded to their
// widest cell (numbers right-aligned).
std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows, bool markdown);

// The standard view of records: label, perplexity (and per word for subword models), Δ vs
// float with its 95% interval ("not significant" when it contains 0), where measured the mean
// KL to float (nats/token) and top-1 agreement with their intervals, the rounding spread where
// repeats were run, MAC overhead, bits per weight, size.
std::vector<std::string> record_header(const std::vector<Record>& records);
std::vector<std::vector<std::string>> record_rows(const std::vector<Record>& records);
std::string markdown_table(const std::vector<Record>& records);
std::string console_table(const std::vector<Record>& records);
// "+1.23% [+0.80, +1.70]" or "+0.12% [−0.20, +0.45] not significant"; "-" for float.
std::string delta_text(const Record& r);
// "0.0123 [0.0118, 0.0129]" (nats per token), "-" when not measured; top-1: "97.12% [97.0,
// 97.3]".
std::string kl_text(const Record& r);
std::string top1_text(const Record& r);
// The same for any paired comparison: "+1.23% [+0.80, +1.70]" (+ " not significant"), or
// "+1.23% (too few chunks for an interval)".
std::string interval_text(const PairedInterval& p);

// The per-matrix table of one quantization (the plan executed: objective/rounding, widths,
// scales; splits, max|W| before/after, α, MSE, SQNR, clipped fraction, MAC overhead) as console
// columns, then each setting that did not apply to a matrix, with why.
std::string matrix_table(const std::vector<MatrixReport>& matrices);
// `lmquant quantize`'s text: the record's label (and the asked configuration's where it
// differs), perplexity vs float with its interval, bits per weight and size, the divergence,
// per-word perplexity for subword tokens, the rounding spread, then matrix_table.
std::string quantize_summary(const Record& record, const std::string& corpus);

std::string csv(const std::vector<Record>& records);
nlohmann::json records_json(const std::vector<Record>& records);
// Every record of a JSON array (results.json) or of JSON lines (a sweep's --out).
std::vector<Record> read_records(const std::string& text);

// Writes `dir` whole: calls `fill(staging_dir)` to put files in a staging folder beside `dir`,
// then replaces `dir` with it. Throws naming `dir` when the parent is not writable.
void write_report_dir(const std::string& dir, const std::function<void(const std::string&)>& fill);

}  // namespace lmquant
