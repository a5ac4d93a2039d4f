#include "experiment/bench_ceilings.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <sstream>
#include <vector>

#include "engine/int8_gemm.h"
#include "util/fast_math.h"

namespace lmquant {
namespace {

using Clock = std::chrono::steady_clock;

// Seconds per call of fn, repeated until `budget` seconds have passed (after one warm-up).
double per_call(const std::function<void()>& fn, double budget) {
  fn();
  const auto t0 = Clock::now();
  int64_t n = 0;
  double el = 0;
  do {
    fn();
    ++n;
    el = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (el < budget);
  return el / static_cast<double>(n);
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string isa_flags() {
  std::string s;
  for (const char* f : {"avx2", "fma", "avx512f", "avx512bw", "avx512vnni", "avxvnni"}) {
    __builtin_cpu_init();
    bool has = false;
    const std::string n = f;
    if (n == "avx2") has = __builtin_cpu_supports("avx2");
    if (n == "fma") has = __builtin_cpu_supports("fma");
    if (n == "avx512f") has = __builtin_cpu_supports("avx512f");
    if (n == "avx512bw") has = __builtin_cpu_supports("avx512bw");
    if (n == "avx512vnni") has = __builtin_cpu_supports("avx512vnni");
    if (n == "avxvnni") has = cpu_has_avx_vnni();
    if (has) s += (s.empty() ? "" : "+") + n;
  }
  return s.empty() ? "baseline x86-64" : s;
}

// oneDNN's int8 matmul [M, K] (s8 or u8) x [K, n] s8 ("ba": the codes row-major) -> s32.
struct OneDnnMatmul {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  dnnl::memory src, wei, dst;
  OneDnnMatmul(bool u8, int64_t M, int64_t K, int64_t n, void* a, void* w, void* c) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc sd({M, K}, u8 ? dt::u8 : dt::s8, tag::ab), wd({K, n}, dt::s8, tag::ba),
        dd({M, n}, dt::s32, tag::ab);
    prim = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(sd, wd, dd), eng));
    src = dnnl::memory(sd, eng, a);
    wei = dnnl::memory(wd, eng, w);
    dst = dnnl::memory(dd, eng, c);
  }
  void run() {
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    strm.wait();
  }
};

}  // namespace

CeilingsResult measure_ceilings(int64_t V, int64_t H, double budget) {
  CeilingsResult out;
  std::ostringstream t;
  const char* caps[] = {"LMQUANT_INT8_ISA", "LMQUANT_VECTOR_ISA", "ONEDNN_MAX_CPU_ISA",
                        "DNNL_MAX_CPU_ISA", "OPENBLAS_CORETYPE",  "ATEN_CPU_CAPABILITY"};
  std::string cap_text;
  for (const char* c : caps)
    if (const char* v = std::getenv(c); v && *v) cap_text += std::string(" ") + c + "=" + v;
  const Int8Isa best = detect_int8_isa();
  t << "matrix-product ceilings on " << cpu_model() << " (" << isa_flags() << "), "
    << at::get_num_threads() << " threads; lmquant int8 kernel: " << to_string(best)
    << ", vector loops: " << to_string(vector_isa()) << (cap_text.empty() ? "" : ";" + cap_text)
    << "\n";
  out.json["cpu"] = cpu_model();
  out.json["isa"] = isa_flags();
  out.json["int8_kernel"] = to_string(best);
  out.json["vector_isa"] = to_string(vector_isa());
  out.json["caps"] = cap_text;
  out.json["threads"] = at::get_num_threads();
  struct Shape {
    const char* name;
    int64_t M, K, n;
  };
  for (const Shape& s : {Shape{"decoder", 350, H, V}, Shape{"recurrent step", 10, H, 4 * H}}) {
    torch::NoGradGuard g;
    const double macs = static_cast<double>(s.M) * s.K * s.n;
    nlohmann::json j = {{"M", s.M}, {"K", s.K}, {"n", s.n}};
    auto rate = [&](const char* key, double sec) {
      j[key] = macs / sec / 1e9;
      return macs / sec / 1e9;
    };
    auto a = torch::randn({s.M, s.K}), w = torch::randn({s.n, s.K});
    const double fp32 = rate("fp32_gmacs", per_call([&] { (void)torch::mm(a, w.t()); }, budget));
    // Codes of 7 bits (|q| <= 63): every product is exact on them (oneDNN without VNNI and the
    // avx2 kernel's shifted form only up to |q| = 64, int8_linear.h).
    auto qa = torch::randint(-127, 128, {s.M, s.K}, torch::kChar);
    auto qw = torch::randint(-63, 64, {s.n, s.K}, torch::kChar);
    auto ua = (qa.to(torch::kInt) + 128).to(torch::kByte);
    auto c = torch::empty({s.M, s.n}, torch::kInt);
    OneDnnMatmul s8(false, s.M, s.K, s.n, qa.data_ptr(), qw.data_ptr(), c.data_ptr());
    OneDnnMatmul u8(true, s.M, s.K, s.n, ua.data_ptr(), qw.data_ptr(), c.data_ptr());
    const double dnn_s8 = rate("onednn_s8s8_gmacs", per_call([&] { s8.run(); }, budget));
    const double dnn_u8 = rate("onednn_u8s8_gmacs", per_call([&] { u8.run(); }, budget));
    t << "  " << s.name << " " << s.M << " x " << s.K << " x " << s.n << ": fp32 (BLAS) "
      << static_cast<int>(fp32) << " GMAC/s, oneDNN s8s8 " << static_cast<int>(dnn_s8)
      << ", oneDNN u8s8 " << static_cast<int>(dnn_u8);
    const bool split = s.n >= 1024;  // the decoder: vocabulary blocks over the threads
    // The kernel on `codes` ([n, K] int8) with `isa`, in GMAC/s.
    auto kernel_rate = [&](const torch::Tensor& codes, Int8Isa isa, const std::string& key) {
      const Int8GemmWeights p(codes.data_ptr<int8_t>(), s.n, s.K, isa);
      const int8_t* ap = qa.data_ptr<int8_t>();
      int32_t* cp = c.data_ptr<int32_t>();
      const double sec = per_call(
          [&] {
            if (!split) return p.products(ap, s.K, s.M, 0, s.n, cp, s.n);
            const int64_t blocks = (s.n + 1023) / 1024;
            // As the decoder does: each block's products into the thread's [M, 1024] buffer.
            at::parallel_for(0, blocks, 1, [&](int64_t b, int64_t e) {
              thread_local std::vector<int32_t> buf;
              buf.resize(static_cast<size_t>(s.M * 1024));
              for (int64_t k = b; k < e; ++k) {
                const int64_t j0 = k * 1024, n = std::min<int64_t>(1024, s.n - j0);
                p.products(ap, s.K, s.M, j0, n, buf.data(), n);
              }
            });
          },
          budget);
      return std::pair<double, int64_t>{rate(key.c_str(), sec), p.chain()};
    };
    for (Int8Isa isa : {Int8Isa::kAvx2, Int8Isa::kAvxVnni, Int8Isa::kAvx512Vnni}) {
      if (!cpu_has(isa)) continue;
      const double r = kernel_rate(qw, isa, "lmquant_" + to_string(isa) + "_gmacs").first;
      t << ", lmquant " << to_string(isa) << " " << static_cast<int>(r);
      if (isa == Int8Isa::kAvx2) {
        // 4-bit codes (|q| <= 7): the avx2 kernel's int16 chains (int8_gemm.h) are longer.
        auto qw4 = torch::randint(-7, 8, {s.n, s.K}, torch::kChar);
        const auto [r4, chain] = kernel_rate(qw4, isa, "lmquant_avx2_4bit_gmacs");
        j["lmquant_avx2_4bit_chain"] = chain;
        t << ", lmquant avx2 on 4-bit codes (int16 chains of " << chain << ") "
          << static_cast<int>(r4);
        // 8-bit codes (|q| <= 127): the signed form, exact where the shifted one would saturate.
        auto qw8 = torch::randint(-127, 128, {s.n, s.K}, torch::kChar);
        t << ", lmquant avx2 on 8-bit codes (signed form) "
          << static_cast<int>(kernel_rate(qw8, isa, "lmquant_avx2_8bit_gmacs").first);
      }
    }
    t << " GMAC/s\n";
    out.json[s.name] = j;
  }
  out.text = t.str();
  return out;
}

}  // namespace lmquant
