// Progress reporting without printing: the library calls a Progress callback; the CLI decides
// how to show it (tools/cli draws a bar with rate and ETA on stderr).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

namespace lmquant {

struct ProgressEvent {
  std::string label;   // what is being done ("download train.txt", "epoch 1", ...)
  int64_t done = 0;    // units finished
  int64_t total = 0;   // units in all; 0 when unknown
  std::string unit;    // "B", "tok", "cells", ...
  std::string detail;  // free text (loss, lr, ...)
  bool finished = false;
};

using Progress = std::function<void(const ProgressEvent&)>;

}  // namespace lmquant
