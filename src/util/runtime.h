// Process-wide compute settings: LibTorch's thread count and the BLAS in use.
#pragma once
#include <string>

namespace lmquant {

// Sets LibTorch's intra-op threads; n <= 0 means "all cores" (std::thread::hardware_concurrency).
// Debian's LibTorch starts with one thread, so every entry point calls this. Returns the count.
// It also calls configure_allocator().
int configure_threads(int n);

// glibc serves blocks above 128 KiB with mmap and unmaps them on free, so every 46 MB logits
// chunk of an evaluation (93 MB per training batch) is page-faulted in anew; on this VM that cost
// as much as the decoder's matrix product. Raising M_MMAP_THRESHOLD and M_TRIM_THRESHOLD to
// 1 GiB keeps freed blocks in the heap for reuse (measured: training batch 2.2 s -> 1.0 s on one
// thread). Peak memory is unchanged; freed memory is kept by the process instead of returned.
void configure_allocator();

// Which BLAS library the process has loaded for LibTorch's matrix products: "openblas",
// "reference" (netlib libblas: ~12x slower) or "unknown". Runs one small matrix product first so
// the library is loaded, then reads /proc/self/maps.
std::string blas_backend();

// A one-line warning when the reference BLAS is in use, else "".
std::string blas_warning();

}  // namespace lmquant
