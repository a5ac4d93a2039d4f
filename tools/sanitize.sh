#!/usr/bin/env bash
# Builds lmquant with AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/ and runs the
# test suite under it (UBSan findings abort; ASan reports fail the test). LibTorch itself is not
# instrumented. The sentencepiece shim is never sanitized (it lives in its own link namespace).
#   tools/sanitize.sh [GTEST_FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --no-build
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMQUANT_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
# LibTorch keeps some one-off allocations until exit: leaks are not what this run looks for.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build-asan/lmquant_tests --gtest_filter="${1:-*}"
