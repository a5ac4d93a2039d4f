#include "corpus/registry.h"

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "registry_data.h"
#include "util/json_check.h"
#include "util/sha256.h"

namespace lmquant {
namespace {

const std::map<std::string, CorpusSpec>& registry() {
  static const std::map<std::string, CorpusSpec> specs = [] {
    std::map<std::string, CorpusSpec> out;
    for (auto& spec : parse_registry(generated::kRegistryJson)) out.emplace(spec.name, spec);
    return out;
  }();
  return specs;
}

void only_fields(const nlohmann::json& j, const std::set<std::string>& known,
                 const std::string& where) {
  if (!j.is_object()) throw std::runtime_error(where + " is not a JSON object");
  for (const auto& [k, v] : j.items())
    if (!known.count(k)) throw std::runtime_error(where + ": unknown field '" + k + "'");
}

}  // namespace

std::vector<CorpusSpec> parse_registry(const std::string& text) {
  std::vector<CorpusSpec> out;
  try {
    const auto j = nlohmann::json::parse(text);
    check_json_numbers(j, "corpus registry");
    if (!j.is_object() || j.empty())
      throw std::runtime_error("the registry is not a JSON object of corpora");
    for (const auto& [name, c] : j.items()) {
      const std::string where = "corpus '" + name + "'";
      if (name.empty() || name.find_first_of("/\\ ") != std::string::npos)
        throw std::runtime_error(where + ": not a plain name");
      only_fields(c, {"folder", "description", "files"}, where);
      CorpusSpec spec;
      spec.name = name;
      spec.folder = c.at("folder").get<std::string>();
      if (spec.folder.empty() || spec.folder == "." || spec.folder == ".." ||
          spec.folder.find_first_of("/\\") != std::string::npos)
        throw std::runtime_error(where + ": folder '" + spec.folder + "' is not one plain name");
      spec.description = c.value("description", "");
      only_fields(c.at("files"), {"train.txt", "valid.txt", "test.txt"}, where + " files");
      for (const char* split : {"train.txt", "valid.txt", "test.txt"}) {
        const auto& f = c.at("files").at(split);
        const std::string at = where + " " + split;
        only_fields(f, {"sha256", "md5", "bytes", "urls"}, at);
        CorpusFileSpec file{split, f.value("sha256", ""), f.value("bytes", int64_t{0}),
                            f.at("urls").get<std::vector<std::string>>(), f.value("md5", "")};
        if (file.sha256.empty() == file.md5.empty())
          throw std::runtime_error(at + ": give its sha256 (or, where none is published, its md5)");
        auto hex = [&](const std::string& v, size_t digits, const char* what) {
          if (v.size() != digits || v.find_first_not_of("0123456789abcdef") != std::string::npos)
            throw std::runtime_error(at + ": " + what + " is not " + std::to_string(digits) +
                                     " lowercase hex digits");
        };
        if (file.md5.empty())
          hex(file.sha256, 64, "sha256");
        else
          hex(file.md5, 32, "md5");
        if (file.bytes < 0) throw std::runtime_error(at + ": negative size");
        for (const auto& u : file.urls)
          if (u.rfind("https://", 0) != 0 && u.rfind("http://", 0) != 0)
            throw std::runtime_error(at + ": '" + u + "' is not an http(s) address");
        spec.files.push_back(std::move(file));
      }
      out.push_back(std::move(spec));
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("corpus registry: ") + e.what());
  }
  return out;
}

std::string CorpusFileSpec::digest_of(const std::string& path) const {
  return sha256.empty() ? md5_file(path) : sha256_file(path);
}

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
