// Parsing option values so that every error names the flag it came from: the helpers the CLI's
// commands and the option groups (quant_options.h) share.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "util/interrupt.h"

namespace lmquant::options {

// "a,b,c" -> {"a", "b", "c"} (empty items dropped); throws std::invalid_argument naming `flag`
// when nothing is left.
std::vector<std::string> split_list(const std::string& s, const std::string& flag);

// A number given in an option; throws std::invalid_argument naming the flag when `text` is not
// one.
double parse_number(const std::string& flag, const std::string& text);

// NAME=VALUE items of a per-matrix option ("embedding=4,decoder=3"); throws naming the flag and
// the item, with `example`, when one is not NAME=VALUE. Empty list: none.
std::vector<std::pair<std::string, std::string>> name_value_items(const std::string& list,
                                                                  const std::string& flag,
                                                                  const std::string& example);

// Runs fn; a library error (which names values, never flags) is rethrown, same type, with
// "FLAG: " before its message, so the user reads which option the value came from.
template <class F>
auto with_flag(const std::string& flag, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(flag + ": " + e.what());
  } catch (const Interrupted&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(flag + ": " + e.what());
  }
}

// "a,b,c" parsed item by item with `parse` (errors prefixed with the flag).
template <class T, class F>
std::vector<T> parse_list(const std::string& flag, const std::string& text, F&& parse) {
  std::vector<T> out;
  for (const auto& item : split_list(text, flag))
    out.push_back(with_flag(flag, [&] { return static_cast<T>(parse(item)); }));
  return out;
}

}  // namespace lmquant::options
