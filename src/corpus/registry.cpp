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

// One file (or an archive): exactly one digest of its length in lowercase hex, a size, and either
// sources (a file published on its own, an archive) or a member of the corpus's archive.
CorpusFileSpec parse_file(const nlohmann::json& f, const std::string& name, const std::string& at,
                          bool is_archive, bool in_archive) {
  only_fields(f,
              is_archive
                  ? std::set<std::string>{"name", "sha256", "sha1", "md5", "bytes", "urls"}
                  : std::set<std::string>{"sha256", "sha1", "md5", "bytes", "urls", "member"},
              at);
  CorpusFileSpec file;
  file.name = name;
  file.sha256 = f.value("sha256", "");
  file.sha1 = f.value("sha1", "");
  file.md5 = f.value("md5", "");
  file.bytes = f.value("bytes", int64_t{0});
  file.member = f.value("member", "");
  if (f.contains("urls")) file.urls = f.at("urls").get<std::vector<std::string>>();
  const int digests = !file.sha256.empty() + !file.sha1.empty() + !file.md5.empty();
  if (digests != 1)
    throw std::runtime_error(at +
                             ": give one digest: its sha256 (or, where none is published, "
                             "its sha1 or md5)");
  auto hex = [&](const std::string& v, size_t digits, const char* what) {
    if (!v.empty() &&
        (v.size() != digits || v.find_first_not_of("0123456789abcdef") != std::string::npos))
      throw std::runtime_error(at + ": " + what + " is not " + std::to_string(digits) +
                               " lowercase hex digits");
  };
  hex(file.sha256, 64, "sha256");
  hex(file.sha1, 40, "sha1");
  hex(file.md5, 32, "md5");
  if (file.bytes < 0) throw std::runtime_error(at + ": negative size");
  for (const auto& u : file.urls)
    if (u.rfind("https://", 0) != 0 && u.rfind("http://", 0) != 0)
      throw std::runtime_error(at + ": '" + u + "' is not an http(s) address");
  if (in_archive) {
    if (!f.contains("member") || f.contains("urls"))
      throw std::runtime_error(at + ": a file of an archive corpus names its member (and no urls)");
    const std::string& m = file.member;
    if (m.empty() || m.front() == '/' || m.find('\\') != std::string::npos ||
        ("/" + m + "/").find("/../") != std::string::npos)
      throw std::runtime_error(at + ": member '" + m +
                               "' is not a relative path inside the archive");
  } else {
    if (f.contains("member"))
      throw std::runtime_error(at + ": a member, but the corpus names no archive");
    if (!f.contains("urls")) throw std::runtime_error(at + ": no urls");
  }
  return file;
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
      only_fields(c, {"folder", "description", "archive", "files"}, where);
      CorpusSpec spec;
      spec.name = name;
      auto plain = [&](const std::string& v, const std::string& what) {
        if (v.empty() || v == "." || v == ".." || v.find_first_of("/\\") != std::string::npos)
          throw std::runtime_error(where + ": " + what + " '" + v + "' is not one plain name");
      };
      spec.folder = c.at("folder").get<std::string>();
      plain(spec.folder, "folder");
      spec.description = c.value("description", "");
      if (c.contains("archive")) {
        const auto& a = c.at("archive");
        if (!a.is_object() || !a.contains("name"))
          throw std::runtime_error(where + " archive: give its name");
        const std::string archive_name = a.at("name").get<std::string>();
        plain(archive_name, "archive name");
        spec.archive = parse_file(a, archive_name, where + " archive", true, false);
        if (spec.archive->urls.empty()) throw std::runtime_error(where + " archive: no urls");
      }
      only_fields(c.at("files"), {"train.txt", "valid.txt", "test.txt"}, where + " files");
      for (const char* split : {"train.txt", "valid.txt", "test.txt"})
        spec.files.push_back(parse_file(c.at("files").at(split), split, where + " " + split, false,
                                        spec.archive.has_value()));
      out.push_back(std::move(spec));
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("corpus registry: ") + e.what());
  }
  return out;
}

std::string CorpusFileSpec::digest_name() const {
  return !sha256.empty() ? "SHA-256" : !sha1.empty() ? "SHA-1" : "MD5";
}

const std::string& CorpusFileSpec::digest() const {
  return !sha256.empty() ? sha256 : !sha1.empty() ? sha1 : md5;
}

std::string CorpusFileSpec::digest_of(const std::string& path) const {
  return !sha256.empty() ? sha256_file(path) : !sha1.empty() ? sha1_file(path) : md5_file(path);
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
