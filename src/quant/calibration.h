// Calibration data for error-compensating rounding (quant/gptq.h): short sequences of the train
// split, each preceded by a warm-up stretch that sets the LSTM's state but is not collected.
//
//   sequence i = train[p_i, p_i + warmup + length), p_i uniform in [0, N − warmup − length]
//   (seeded), the state zero at p_i; tokens [warmup + length, sequences] (time-major).
//
// Default: 512 sequences of 35 tokens after a 35-token warm-up (the OCS/GPTQ papers calibrate on
// 512 training samples; 35 is the evaluation's bptt), i.e. 17,920 collected positions.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lm/lstm_lm.h"
#include "lm/matrices.h"

namespace lmquant {

struct CalibrationOptions {
  int64_t sequences = 512;
  int64_t length = 35;
  int64_t warmup = 35;
  uint64_t seed = 20230101;
};

struct Calibration {
  torch::Tensor tokens;  // [warmup + length, sequences]
  int64_t warmup = 0;
  // How often each id occurs in the whole train stream (int64, length: the largest id + 1): the
  // row frequencies of per-row widths (quant/row_widths.h).
  torch::Tensor token_counts;
};

// Draws the sequences from `train` (a 1-d token stream). Throws std::invalid_argument when the
// stream is shorter than one sequence or the counts are not positive.
Calibration make_calibration(const torch::Tensor& train, const CalibrationOptions& options);

// Runs `model` over the calibration tokens (warm-up first, uncollected) and returns, for each
// matrix named in `wanted`, its inputs X [sequences · length, in] (lm/matrices.h's
// collect_matrix_inputs, on the model's current weights).
std::map<std::string, torch::Tensor> calibration_inputs(LstmLmImpl& model,
                                                        const Calibration& calibration,
                                                        const std::vector<std::string>& wanted);

}  // namespace lmquant
