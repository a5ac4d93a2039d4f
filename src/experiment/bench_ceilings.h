// `lmquant bench --what ceilings`: what this machine's matrix products reach on the int8 engine's
// shapes — the decoder's (350 x 200 x 33,278: one 35 x 10 chunk against the WikiText-2
// vocabulary) and the recurrent step's (10 x 200 x 800) — in float (LibTorch's BLAS), in oneDNN's
// s8 x s8 -> s32 and u8 x s8 -> s32 matmul, and in each of lmquant's own int8 kernels this CPU
// can run (engine/int8_gemm.h), with the CPU model, its ISA and any ISA caps in the environment.
// Rates are multiply-adds per second over all threads (the decoder's product split over
// vocabulary blocks as the engine does; the step in one call, as the engine does).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace lmquant {

struct CeilingsResult {
  nlohmann::json json;
  std::string text;
};

// rows/inner/cols of the two shapes can be changed for tests (the defaults are the engine's).
CeilingsResult measure_ceilings(int64_t decoder_cols = 33278, int64_t hidden = 200,
                                double seconds_per_point = 0.3);

}  // namespace lmquant
