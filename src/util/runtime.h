// Process-wide compute settings: LibTorch's thread count and the BLAS in use.
#pragma once
#include <string>

namespace lmquant {

// Sets LibTorch's intra-op threads; n <= 0 means "all cores" (std::thread::hardware_concurrency).
// Debian's LibTorch starts with one thread, so every entry point calls this. Returns the count.
int configure_threads(int n);

// Which BLAS library the process has loaded for LibTorch's matrix products: "openblas",
// "reference" (netlib libblas: ~12x slower) or "unknown". Runs one small matrix product first so
// the library is loaded, then reads /proc/self/maps.
std::string blas_backend();

// A one-line warning when the reference BLAS is in use, else "".
std::string blas_warning();

}  // namespace lmquant
