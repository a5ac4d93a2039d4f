#include "util/runtime.h"

#include <malloc.h>
#include <torch/torch.h>

#include <fstream>
#include <thread>

namespace lmquant {

void configure_allocator() { keep_large_blocks(false); }

void keep_large_blocks(bool on) {
  mallopt(M_MMAP_THRESHOLD, on ? (1 << 30) : kMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void release_free_memory() { malloc_trim(0); }

int configure_threads(int n) {
  configure_allocator();
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  return n;
}

std::string blas_backend() {
  {
    torch::NoGradGuard guard;
    auto a = torch::ones({64, 64});
    (void)torch::mm(a, a);
  }
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool reference = false;
  while (std::getline(maps, line)) {
    if (line.find("openblas") != std::string::npos) return "openblas";
    if (line.find("mkl") != std::string::npos && line.find(".so") != std::string::npos)
      return "mkl";
    if (line.find("/blas/libblas.so") != std::string::npos) reference = true;
  }
  return reference ? "reference" : "unknown";
}

std::string blas_warning() {
  if (blas_backend() != "reference") return "";
  return "warning: LibTorch is using the reference BLAS (~12x slower); install "
         "libopenblas0-openmp (tools/setup.sh does)";
}

}  // namespace lmquant
