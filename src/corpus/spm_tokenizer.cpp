#include "corpus/spm_tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "util/atomic_file.h"
#include "util/sha256.h"

namespace lmquant {
namespace {

namespace fs = std::filesystem;

// The shim's C interface (spm_shim/spm_shim.cpp); bump kAbi with it.
constexpr int kAbi = 1;
struct Shim {
  std::string path;
  int (*abi)();
  void* (*load)(const char*, size_t, char*, size_t);
  void (*release)(void*);
  int (*info)(const void*, int);
  const char* (*piece)(void*, int, size_t*);
  long (*encode)(void*, const char*, size_t, const int**, char*, size_t);
  long (*decode)(void*, const int*, size_t, const char**, char*, size_t);
  int (*train)(const char*, unsigned, char*, size_t);
};

std::vector<std::string> shim_candidates() {
  std::vector<std::string> c;
  if (const char* env = std::getenv("LMQUANT_SPM_SHIM"); env && *env) c.emplace_back(env);
#ifdef LMQUANT_SPM_SHIM_INSTALLED
  c.emplace_back(LMQUANT_SPM_SHIM_INSTALLED);
#endif
#ifdef LMQUANT_SPM_SHIM_BUILT
  c.emplace_back(LMQUANT_SPM_SHIM_BUILT);
#endif
  return c;
}

template <class F>
void bind(void* lib, const char* name, F& f, const std::string& path) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (!f) throw std::runtime_error(path + " lacks " + name + "; rebuild lmquant (tools/setup.sh)");
}

const Shim& shim() {
  static std::once_flag once;
  static Shim s;
  static std::string error;
  std::call_once(once, [] {
    std::string tried;
    for (const auto& p : shim_candidates()) {
      tried += (tried.empty() ? "" : ", ") + p;
      if (!fs::exists(p)) continue;
      // Its own link namespace: see spm_tokenizer.h for why.
      void* lib = dlmopen(LM_ID_NEWLM, p.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!lib) {
        error = "cannot load the sentencepiece shim " + p + ": " + dlerror() +
                " (is libsentencepiece0 installed? tools/setup.sh installs it)";
        return;
      }
      try {
        s.path = p;
        bind(lib, "lmq_spm_abi_version", s.abi, p);
        bind(lib, "lmq_spm_load", s.load, p);
        bind(lib, "lmq_spm_free", s.release, p);
        bind(lib, "lmq_spm_info", s.info, p);
        bind(lib, "lmq_spm_piece", s.piece, p);
        bind(lib, "lmq_spm_encode", s.encode, p);
        bind(lib, "lmq_spm_decode", s.decode, p);
        bind(lib, "lmq_spm_train", s.train, p);
        if (s.abi() != kAbi)
          throw std::runtime_error(p + " is the shim of another lmquant version; rebuild lmquant");
      } catch (const std::exception& e) {
        error = e.what();
      }
      return;
    }
    error = "the sentencepiece shim liblmquant_spm.so was not found (looked at: " +
            (tried.empty() ? std::string("nothing") : tried) +
            "); build lmquant with tools/setup.sh or set LMQUANT_SPM_SHIM to its path";
  });
  if (!error.empty()) throw std::runtime_error(error);
  return s;
}

constexpr size_t kErr = 1024;

}  // namespace

std::string spm_shim_path() {
  try {
    return shim().path;
  } catch (const std::exception&) {
    return "";
  }
}

struct SpmTokenizer::Impl {
  const Shim* shim = nullptr;
  void* handle = nullptr;
  std::mutex mutex;  // the shim keeps each handle's last result in the handle
  ~Impl() {
    if (handle) shim->release(handle);
  }
};

SpmTokenizer SpmTokenizer::load(const std::string& path) {
  const std::string bytes = read_file(path);  // names a missing file
  if (bytes.empty()) throw std::runtime_error(path + " is empty: not a sentencepiece model");
  const Shim& sh = shim();
  SpmTokenizer t;
  t.impl_ = std::make_shared<Impl>();
  t.impl_->shim = &sh;
  char err[kErr] = {0};
  t.impl_->handle = sh.load(bytes.data(), bytes.size(), err, kErr);
  if (!t.impl_->handle)
    throw std::runtime_error(path + " is not a sentencepiece model (sentencepiece says: " + err +
                             "); train one with `lmquant tokenizer train`");
  t.path_ = path;
  t.sha256_ = sha256_bytes(bytes);
  const int n = sh.info(t.impl_->handle, 0);
  for (int id = 0; id < n; ++id) {
    size_t len = 0;
    const char* p = sh.piece(t.impl_->handle, id, &len);
    if (!p || t.vocab_.add(std::string_view(p, len)) != id)
      throw std::runtime_error(path + ": piece " + std::to_string(id) + " is missing or repeated");
  }
  t.unk_ = sh.info(t.impl_->handle, 1);
  t.eos_ = sh.info(t.impl_->handle, 3);
  if (t.eos_ < 0)
    throw std::runtime_error(path +
                             " has no end-of-sentence piece (trained with --eos_id=-1); "
                             "lmquant ends every line with it");
  return t;
}

std::vector<int64_t> SpmTokenizer::encode(std::string_view text) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const int* ids = nullptr;
  char err[kErr] = {0};
  const long n = impl_->shim->encode(impl_->handle, text.data(), text.size(), &ids, err, kErr);
  if (n < 0) throw std::runtime_error(path_ + ": sentencepiece could not encode text: " + err);
  return std::vector<int64_t>(ids, ids + n);
}

std::vector<std::string> SpmTokenizer::encode_pieces(std::string_view text) const {
  std::vector<std::string> out;
  for (int64_t id : encode(text)) out.push_back(vocab_.word(id));
  return out;
}

std::string SpmTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> narrow;
  narrow.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= size())
      throw std::out_of_range("sentencepiece id " + std::to_string(id) + " outside [0, " +
                              std::to_string(size()) + ")");
    narrow.push_back(static_cast<int>(id));
  }
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const char* text = nullptr;
  char err[kErr] = {0};
  const long n = impl_->shim->decode(impl_->handle, narrow.data(), narrow.size(), &text, err, kErr);
  if (n < 0) throw std::runtime_error(path_ + ": sentencepiece could not decode: " + err);
  return std::string(text, static_cast<size_t>(n));
}

void train_spm(const std::string& input, const std::string& out, const SpmTrainOptions& o) {
  if (o.type != "unigram" && o.type != "bpe")
    throw std::invalid_argument("unknown sentencepiece model type '" + o.type +
                                "'; valid values: unigram, bpe");
  if (o.vocab_size < 8 || o.vocab_size > 1000000)
    throw std::invalid_argument("vocabulary size " + std::to_string(o.vocab_size) +
                                " out of range [8, 1000000]");
  if (o.threads < 1) throw std::invalid_argument("sentencepiece threads must be >= 1");
  if (!(o.character_coverage > 0 && o.character_coverage <= 1))
    throw std::invalid_argument("character coverage must be in (0, 1]");
  if (!fs::is_regular_file(input))
    throw std::runtime_error(input + " does not exist or is not a file: nothing to train on");
  const Shim& sh = shim();
  // sentencepiece records the input path and the output prefix in the model file, and splits
  // its arguments at spaces. So: the real input path and a staging prefix beside `out`
  // (out.partial.model, renamed to `out`): the same command writes the same bytes. Paths with
  // whitespace go through a private folder instead (then the file names that folder).
  const auto has_space = [](const std::string& p) {
    return p.find_first_of(" \t\n\r\v\f") != std::string::npos;
  };
  const std::string abs_input = fs::absolute(input).string();
  std::string in_arg = abs_input, prefix = fs::absolute(out).string() + ".partial";
  fs::path private_dir;
  struct Cleanup {
    std::vector<fs::path> paths;
    ~Cleanup() {
      std::error_code ec;
      for (const auto& p : paths) fs::remove_all(p, ec);
    }
  } cleanup;
  if (has_space(in_arg) || has_space(prefix)) {
    std::string tmpl = (fs::temp_directory_path() / "lmquant-spm-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error("cannot create a temporary folder in " +
                               fs::temp_directory_path().string());
    private_dir = tmpl;
    cleanup.paths.push_back(private_dir);
    fs::create_symlink(abs_input, private_dir / "input.txt");
    in_arg = (private_dir / "input.txt").string();
    prefix = (private_dir / "m").string();
  }
  cleanup.paths.push_back(prefix + ".model");
  cleanup.paths.push_back(prefix + ".vocab");
  const std::string args =
      "--input=" + in_arg + " --model_prefix=" + prefix + " --model_type=" + o.type +
      " --vocab_size=" + std::to_string(o.vocab_size) +
      " --character_coverage=" + std::to_string(o.character_coverage) +
      " --num_threads=" + std::to_string(o.threads) +
      " --unk_piece=<spm-unk> --user_defined_symbols=<unk> --max_sentence_length=65536"
      " --input_sentence_size=0 --shuffle_input_sentence=false";
  char err[kErr] = {0};
  if (sh.train(args.c_str(), o.seed, err, kErr) != 0)
    throw std::runtime_error("sentencepiece training on " + input + " failed: " + err);
  if (private_dir.empty()) {
    std::error_code ec;
    fs::rename(prefix + ".model", out, ec);  // same folder: atomic
    if (ec) throw std::runtime_error("cannot write " + out + ": " + ec.message());
  } else {
    write_file_atomic(out, read_file(prefix + ".model"));
  }
}

}  // namespace lmquant
