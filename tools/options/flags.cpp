#include "flags.h"

#include <sstream>

namespace lmquant::options {

std::vector<std::string> split_list(const std::string& s, const std::string& flag) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  if (out.empty()) throw std::invalid_argument(flag + ": give at least one value");
  return out;
}

double parse_number(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument((flag.empty() ? "" : flag + ": ") + "'" + text + "' is not a number");
}

std::vector<std::pair<std::string, std::string>> name_value_items(const std::string& list,
                                                                  const std::string& flag,
                                                                  const std::string& example) {
  std::vector<std::pair<std::string, std::string>> out;
  if (list.empty()) return out;
  for (const auto& item : split_list(list, flag)) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw std::invalid_argument(flag + ": '" + item + "' is not NAME=VALUE (e.g. " + example +
                                  ")");
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

}  // namespace lmquant::options
