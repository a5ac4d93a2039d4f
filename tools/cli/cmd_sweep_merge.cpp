// lmquant sweep merge SHARDS... --out F.jsonl: the shards' results files of a sweep put back
// together (src/experiment/sweep.h merge_sweep_shards).
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "experiment/sweep.h"
#include "report/record.h"
#include "util/atomic_file.h"

namespace lmquant::cli {

// lmquant sweep merge SHARDS... --out F.jsonl
int cmd_sweep_merge(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  std::string out;
  po::options_description desc("Merge");
  // clang-format off
  desc.add_options()
    ("out", po::value(&out)->required(), "the merged results file (JSON lines), written whole")
    ("shards", po::value(&inputs)->multitoken(), "the shards' results files (also positional)");
  // clang-format on
  po::variables_map vm;
  po::positional_options_description pos;
  pos.add("shards", -1);
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    std::printf(
        "usage: lmquant sweep merge SHARD.jsonl... --out F.jsonl\n"
        "Checks that the shards' records share one provenance and one grid, that every cell is "
        "there\n(naming missing cells and the shard that owes them, duplicated cells with "
        "different numbers,\nforeign records), then writes the float record once and the "
        "cells in grid order.\n\n");
    std::cout << desc << "\n";
    return 0;
  }
  po::store(po::command_line_parser(args).options(desc).positional(pos).run(), vm);
  po::notify(vm);
  if (inputs.empty()) throw std::invalid_argument("sweep merge: name the shards' results files");
  const auto records = merge_sweep_shards(inputs);
  with_flag("--out " + out, [&] {
    write_file_atomic(out, [&] {
      std::string s;
      for (const auto& r : records) s += r.to_json().dump() + "\n";
      return s;
    }());
    return 0;
  });
  const auto& g = records.front().sweep;
  std::printf(
      "merged %zu cells (and the float model) of a %lld-shard sweep from %zu file(s) into %s\n",
      records.size() - 1, static_cast<long long>(g.shards), inputs.size(), out.c_str());
  return 0;
}

}  // namespace lmquant::cli
