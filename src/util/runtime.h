// Process-wide compute settings: LibTorch's thread count and the BLAS in use.
#pragma once
#include <string>

namespace lmquant {

// Sets LibTorch's intra-op threads; n <= 0 means "all cores" (std::thread::hardware_concurrency).
// Debian's LibTorch starts with one thread, so every entry point calls this. Returns the count.
// It also calls configure_allocator().
int configure_threads(int n);

// glibc serves blocks above 128 KiB with mmap and unmaps them on free, so every 46 MB logits
// chunk of an evaluation (93 MB per training batch) was page-faulted in anew; on this VM that cost
// as much as the decoder's matrix product (evaluation 36% slower with a 16 MiB threshold: 24.9 s
// vs 18.3 s on wt2-lstm200's valid split). Blocks below kMmapThreshold (64 MiB) stay in the heap
// for reuse; larger ones are mapped and returned on free. With every block kept in the heap (a
// 1 GiB threshold, as before) quantization fragmented it: transient 68–133 MB blocks split by
// long-lived small ones left holes, and the main job on wt2-lstm200 held 2.9 GB resident for a
// 0.5 GB live peak (three fisher-decoder row-width cells: 1.25–1.5 GB; 1.02 GB at 64 MiB,
// 0.86 GB at 16 MiB). M_TRIM_THRESHOLD stays 1 GiB: freed heap memory is kept for reuse.
inline constexpr int kMmapThreshold = 64 << 20;
void configure_allocator();
// Training's 93 MB batch temporaries, repeated thousands of times, stay in the heap while `on`
// (threshold 1 GiB: a training batch 2.2 s -> 1.0 s on one thread); off restores
// kMmapThreshold. lm/train.h's train() holds it on while it runs.
void keep_large_blocks(bool on);

// Returns the heap's free pages to the system (glibc malloc_trim(0): every arena, the free
// pages inside the heap as well as above its top). Freed blocks below kMmapThreshold stay in the
// heap, resident until reused: a Fisher row-width cell on wt2-lstm200 had 258 MB free in the heap
// between its row blocks, and the main job (56 quantizations in turn) held 1.84 GiB resident for
// a live heap peak of 0.63 GB (heaptrack). Called between the row blocks of a vocabulary matrix,
// after each stage of a quantization and after each record: the main job 1.84 -> 0.97 GiB, the
// same records.
void release_free_memory();

// Which BLAS library the process has loaded for LibTorch's matrix products: "openblas",
// "reference" (netlib libblas: ~12x slower) or "unknown". Runs one small matrix product first so
// the library is loaded, then reads /proc/self/maps.
std::string blas_backend();

// A one-line warning when the reference BLAS is in use, else "".
std::string blas_warning();

}  // namespace lmquant
