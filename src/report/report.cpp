#include "report/report.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "util/atomic_file.h"
#include "util/json_check.h"
#include "util/text.h"

namespace fs = std::filesystem;

namespace lmquant {

namespace {

bool numeric(const std::string& c) {
  return !c.empty() && (std::isdigit(static_cast<unsigned char>(c[0])) || c[0] == '+' ||
                        c[0] == '-' || c[0] == '.');
}

// Display width of UTF-8 text (code points).
size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

bool subword(const std::vector<Record>& records) {
  for (const auto& r : records)
    if (r.source.tokenizer != "word") return true;
  return false;
}

bool divergence(const std::vector<Record>& records) {
  for (const auto& r : records)
    if (r.has_divergence()) return true;
  return false;
}

}  // namespace

std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows, bool markdown) {
  std::ostringstream o;
  if (markdown) {
    auto line = [&](const std::vector<std::string>& cells) {
      o << "|";
      for (const auto& c : cells) o << " " << c << " |";
      o << "\n";
    };
    line(header);
    o << "|";
    for (size_t i = 0; i < header.size(); ++i) o << "---|";
    o << "\n";
    for (const auto& r : rows) line(r);
    return o.str();
  }
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = width(header[i]);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
  auto line = [&](const std::vector<std::string>& cells, bool head) {
    for (size_t i = 0; i < cells.size(); ++i) {
      const std::string pad(w[i] - width(cells[i]), ' ');
      const bool right = !head && i > 0 && numeric(cells[i]);
      o << (i ? "  " : "")
        << (right ? pad + cells[i] : cells[i] + (i + 1 < cells.size() ? pad : ""));
    }
    o << "\n";
  };
  line(header, true);
  for (const auto& r : rows) line(r, false);
  return o.str();
}

std::string delta_text(const Record& r) {
  if (r.is_float()) return "-";
  if (r.vs_float.resamples == 0) return fmt("%+.2f%%", r.vs_float.delta_pct);
  return interval_text(r.vs_float);
}

std::string kl_text(const Record& r) {
  if (!r.has_divergence()) return "-";
  const MeanInterval& k = r.kl_to_float;
  if (k.resamples == 0) return fmt("%.4f", k.mean);
  return fmt("%.4f", k.mean) + " [" + fmt("%.4f", k.ci_low) + ", " + fmt("%.4f", k.ci_high) + "]";
}

std::string top1_text(const Record& r) {
  if (!r.has_divergence()) return "-";
  const MeanInterval& t = r.top1_agreement;
  if (t.resamples == 0) return fmt("%.2f%%", 100 * t.mean);
  return fmt("%.2f%%", 100 * t.mean) + " [" + fmt("%.1f", 100 * t.ci_low) + ", " +
         fmt("%.1f", 100 * t.ci_high) + "]";
}

std::string interval_text(const PairedInterval& v) {
  if (v.resamples == 0) return fmt("%+.2f%%", v.delta_pct) + " (too few chunks for an interval)";
  return fmt("%+.2f%%", v.delta_pct) + " [" + fmt("%+.2f", v.ci_low) + ", " +
         fmt("%+.2f", v.ci_high) + "]" + (v.significant() ? "" : " not significant");
}

std::vector<std::string> record_header(const std::vector<Record>& records) {
  std::vector<std::string> h = {"method", "perplexity"};
  if (subword(records)) h.push_back("per word");
  bool spread = false;
  for (const auto& r : records) spread |= !r.repeat_perplexities.empty();
  h.push_back("Δ vs float [95% CI]");
  if (divergence(records)) h.insert(h.end(), {"KL to float [95% CI]", "top-1 agreement"});
  if (spread) h.push_back("rounding spread (mean ± sd)");
  h.insert(h.end(), {"MAC overhead", "bits/weight", "size"});
  return h;
}

std::vector<std::vector<std::string>> record_rows(const std::vector<Record>& records) {
  const bool per_word = subword(records);
  const bool with_kl = divergence(records);
  bool spread = false;
  for (const auto& r : records) spread |= !r.repeat_perplexities.empty();
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : records) {
    std::vector<std::string> row = {r.label(), fmt("%.2f", r.perplexity())};
    if (per_word) row.push_back(fmt("%.2f", r.word_perplexity()));
    row.push_back(delta_text(r));
    if (with_kl) {
      row.push_back(kl_text(r));
      row.push_back(top1_text(r));
    }
    if (spread) {
      const Spread s = r.spread();
      row.push_back(s.n ? fmt("%.2f", s.mean) + " ± " + fmt("%.2f", s.std) + " (" +
                              std::to_string(s.n) + ")"
                        : "-");
    }
    row.push_back(fmt("%.2f%%", r.macs_overhead_pct()));
    row.push_back(fmt("%.3f", r.bits_per_weight()));
    row.push_back(fmt("%.2f MiB", r.size_bits / 8 / 1048576));
    rows.push_back(row);
  }
  return rows;
}

std::string markdown_table(const std::vector<Record>& records) {
  return format_table(record_header(records), record_rows(records), true);
}

std::string console_table(const std::vector<Record>& records) {
  return format_table(record_header(records), record_rows(records), false);
}

std::string matrix_table(const std::vector<MatrixReport>& matrices) {
  std::vector<std::vector<std::string>> rows;
  std::string notes;
  for (const auto& r : matrices) {
    // The plan executed (records before lmquant 0.4 have none: "-").
    const std::string plan =
        r.objective.empty()
            ? "-"
            : r.objective + "/" + r.rounding + (r.sensitivity.empty() ? "" : " " + r.sensitivity);
    rows.push_back({r.name, plan, r.widths.empty() ? std::to_string(r.bits) : r.widths,
                    r.granularity.empty() ? "-" : r.granularity + (r.rotated ? " rot" : ""),
                    std::to_string(r.split_channels), fmt("%.4f", r.max_abs_before),
                    fmt("%.4f", r.max_abs_after), fmt("%.5f", r.alpha), fmt("%.3g", r.mse),
                    fmt("%.2f", r.sqnr_db), fmt("%.4f%%", 100 * r.clipped_fraction),
                    fmt("%.2f%%", r.macs_before ? 100.0 * (r.macs_after - r.macs_before) /
                                                      static_cast<double>(r.macs_before)
                                                : 0.0)});
    for (const auto& n : r.not_applied) notes += "  " + r.name + ": " + n + "\n";
  }
  return format_table({"matrix", "objective/rounding", "bits", "scales", "splits", "max|W|",
                       "max|W'|", "alpha", "mse", "sqnr(dB)", "clipped", "MACs+"},
                      rows, false) +
         (notes.empty() ? "" : "not applied:\n" + notes);
}

std::string quantize_summary(const Record& r, const std::string& corpus) {
  std::string s = strf(
      "%s on %s %s: perplexity %.2f (float %.2f, %s), %.4f bits per weight, "
      "size %.2f MiB (float %.2f)\n",
      r.label().c_str(), corpus.c_str(), r.source.split.c_str(), r.perplexity(), r.float_perplexity,
      delta_text(r).c_str(), r.bits_per_weight(), r.size_bits / 8 / 1048576,
      r.float_size_bits / 8 / 1048576);
  if (!(r.asked == r.config)) s += "asked: " + r.asked.label() + "\n";
  if (r.has_divergence())
    s += "KL(float || quantized) " + kl_text(r) + " nats/token, top-1 agreement with float " +
         top1_text(r) + "\n";
  if (r.source.tokenizer != "word")
    s += strf("per word (word-normalised): %.2f (float %.2f)\n", r.word_perplexity(),
              std::exp(std::log(r.float_perplexity) * r.source.tokens_per_word()));
  if (!r.repeat_perplexities.empty())
    s += strf("rounding spread over %d jittered repeats: %.2f ± %.2f\n", r.spread().n,
              r.spread().mean, r.spread().std);
  return s + matrix_table(r.matrices);
}

std::string csv(const std::vector<Record>& records) {
  std::ostringstream o;
  o << "label,model,model_sha256,corpus,split,first_tokens,tokens,method,clip,bits,granularity,"
       "expand_ratio,grid_aware,repeat,perplexity,float_perplexity,delta_pct,ci_low,ci_high,"
       "significant,repeat_mean,repeat_std,params_overhead_percent,macs_overhead_percent,"
       "size_bits,eval_seconds,quantize_seconds,tokenizer,tokens_per_word,word_perplexity,"
       "bits_per_weight,kl_to_float,kl_ci_low,kl_ci_high,top1_agreement,top1_ci_low,top1_ci_high\n";
  o.precision(10);
  for (const auto& r : records) {
    const auto& q = r.config;
    const bool fl = r.is_float();
    const Spread s = r.spread();
    o << '"' << r.label() << "\",\"" << r.source.model << "\"," << r.source.model_sha256 << ','
      << r.source.corpus << ',' << r.source.split << ',' << r.source.first_tokens << ','
      << r.eval.tokens << ',' << to_string(q.method) << ",\"" << (fl ? "" : q.clip.to_string())
      << "\"," << (fl ? 32 : q.bits) << ',' << (fl ? "" : to_string(q.granularity)) << ','
      << q.expand_ratio << ',' << (q.grid_aware ? 1 : 0) << ',' << q.repeat << ',' << r.perplexity()
      << ',' << r.float_perplexity << ',' << r.vs_float.delta_pct << ',' << r.vs_float.ci_low << ','
      << r.vs_float.ci_high << ',' << (r.vs_float.significant() ? 1 : 0) << ','
      << (s.n ? std::to_string(s.mean) : "") << ',' << (s.n ? std::to_string(s.std) : "") << ','
      << r.params_overhead_pct() << ',' << r.macs_overhead_pct() << ',' << r.size_bits << ','
      << r.eval.seconds << ',' << r.quantize_seconds << ',' << r.source.tokenizer << ','
      << r.source.tokens_per_word() << ',' << r.word_perplexity() << ',' << r.bits_per_weight();
    if (r.has_divergence()) {
      const auto& k = r.kl_to_float;
      const auto& t = r.top1_agreement;
      o << ',' << k.mean << ',' << k.ci_low << ',' << k.ci_high << ',' << t.mean << ',' << t.ci_low
        << ',' << t.ci_high << '\n';
    } else {
      o << ",,,,,,\n";
    }
  }
  return o.str();
}

nlohmann::json records_json(const std::vector<Record>& records) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& r : records) a.push_back(r.to_json());
  return a;
}

std::vector<Record> read_records(const std::string& text) {
  std::vector<Record> out;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return out;
  // Any error names where it is: the array element or the line.
  auto parse = [&](const std::string& where, auto&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      throw std::runtime_error(where + ": " + e.what());
    }
  };
  if (text[first] == '[') {
    nlohmann::json all;
    parse("records", [&] {
      all = nlohmann::json::parse(text);
      check_json_numbers(all, "records");
    });
    if (!all.is_array()) throw std::runtime_error("records: not a JSON array");
    for (size_t i = 0; i < all.size(); ++i)
      parse("record " + std::to_string(i + 1), [&] { out.push_back(Record::from_json(all[i])); });
    return out;
  }
  std::istringstream in(text);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") != std::string::npos)
      parse("line " + std::to_string(n), [&] {
        const auto j = nlohmann::json::parse(line);
        check_json_numbers(j, "record");
        out.push_back(Record::from_json(j));
      });
  }
  return out;
}

void write_report_dir(const std::string& dir, const std::function<void(const std::string&)>& fill) {
  const fs::path target = fs::absolute(dir);
  const fs::path parent = target.parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  const fs::path stage =
      parent / ("." + target.filename().string() + ".tmp." + std::to_string(::getpid()));
  const fs::path old =
      parent / ("." + target.filename().string() + ".old." + std::to_string(::getpid()));
  fs::remove_all(stage, ec);
  if (!fs::create_directory(stage, ec) || ec)
    throw std::runtime_error("cannot write the report directory " + dir + ": " +
                             (ec ? ec.message() : std::string("cannot create ") + stage.string()) +
                             " (choose a writable report directory)");
  try {
    fill(stage.string());
    if (fs::exists(target)) fs::rename(target, old);
    fs::rename(stage, target);
    fs::remove_all(old, ec);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(stage, ec);
    throw std::runtime_error("cannot write the report directory " + dir + ": " + e.what());
  } catch (...) {
    fs::remove_all(stage, ec);
    throw;
  }
}

}  // namespace lmquant
