#include "corpus/registry.h"

#include <nlohmann/json.hpp>

#include <map>
#include <stdexcept>

#include "registry_data.h"

namespace lmquant {
namespace {

const std::map<std::string, CorpusSpec>& registry() {
  static const std::map<std::string, CorpusSpec> specs = [] {
    std::map<std::string, CorpusSpec> out;
    const auto j = nlohmann::json::parse(generated::kRegistryJson);
    for (const auto& [name, c] : j.items()) {
      CorpusSpec spec;
      spec.name = name;
      spec.folder = c.at("folder").get<std::string>();
      spec.description = c.value("description", "");
      for (const char* split : {"train.txt", "valid.txt", "test.txt"}) {
        const auto& f = c.at("files").at(split);
        spec.files.push_back({split, f.at("sha256").get<std::string>(), f.value("bytes", int64_t{0}),
                              f.at("urls").get<std::vector<std::string>>()});
      }
      out.emplace(name, std::move(spec));
    }
    return out;
  }();
  return specs;
}

}  // namespace

std::vector<std::string> registered_corpora() {
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

bool is_registered_corpus(const std::string& name) { return registry().count(name) > 0; }

CorpusSpec corpus_spec(const std::string& name) {
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::string valid;
    for (const auto& n : registered_corpora()) valid += (valid.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown corpus '" + name + "'; registered corpora: " + valid +
                                " (or give a directory holding train.txt, valid.txt, test.txt)");
  }
  return it->second;
}

}  // namespace lmquant
