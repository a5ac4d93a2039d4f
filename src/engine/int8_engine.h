// The int8 engine of a quantized or packed model file: the embedding gathered from its codes,
// W_ih, W_hh (int8_lstm.h) and the decoder (int8_decoder.h) as int8 codes x int8 activations with
// int32 accumulation, plugged into evaluate and the sentence scorer through EngineHooks.
#pragma once
#include "engine/int8_decoder.h"
#include "engine/int8_lstm.h"
#include "lm/evaluate.h"

namespace lmquant {

enum class EngineKind { kFloat, kInt8 };
std::string to_string(EngineKind e);
// "float" or "int8"; throws std::invalid_argument listing the valid values.
EngineKind parse_engine(const std::string& s);

// Hooks running `f` in int8. With `lstm` false only the decoder runs in int8 (the LSTM stays
// float). `f.loaded.model` gains the decoder's OCS expansion; with `release_float` its float
// matrices (embedding, W_ih, W_hh, decoder) are then freed, leaving only the codes in memory (the
// model is then only good for init_state / decoder_input). Throws std::invalid_argument naming
// the matrix the engine cannot run.
EngineHooks int8_engine(QuantizedFile& f, bool lstm = true, bool release_float = false);

}  // namespace lmquant
