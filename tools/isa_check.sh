#!/usr/bin/env bash
# Runs the tests of lmquant's CPU-dispatched code (the int8 engine and its kernels, the vectorised
# NLL, divergence and gate loops) as CPUs this machine is not:
#   - under QEMU's user-mode emulator (qemu-x86_64, package qemu-user) with the CPUID of
#       EPYC-Rome  an AMD Zen 2 server: AVX2 + FMA, no AVX-512, no VNNI (the AVX2 kernels, the
#                  avx2 copies of the LMQ_DISPATCH loops, OpenBLAS and oneDNN at AVX2)
#       Nehalem    SSE4.2, no AVX (the baseline copies, oneDNN's SSE4.1 path)
#     QEMU 7.2 emulates AVX2 but not AVX-512, so an AVX-512 instruction outside the run-time
#     dispatch would stop the run (SIGILL) instead of passing unnoticed;
#   - natively with oneDNN capped to AVX2 (ONEDNN_MAX_CPU_ISA); with everything capped to AVX2
#     (oneDNN, OpenBLAS, the int8 kernel: LMQUANT_INT8_ISA, the vector loops: LMQUANT_VECTOR_ISA),
#     which is how the AVX2 speeds in the README are measured; with the loops at the baseline.
# Correctness only: an emulated CPU's time is not that CPU's time.
# Usage: tools/isa_check.sh [build dir, default build]. Exit 0 when every run passed, 1 when one
# failed, 77 (CTest: skipped) without qemu-x86_64 (tools/setup.sh installs it).
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tests="$build/lmquant_tests"
filter='Int8*:FastMath*:Nll*:Divergence*:Evaluate*:UniformQuantizer*'
[ -x "$tests" ] || { echo "isa_check: $tests not built (tools/setup.sh)" >&2; exit 1; }
if ! command -v qemu-x86_64 >/dev/null; then
  echo "isa_check: skipped: no qemu-x86_64 (apt-get install qemu-user)" >&2
  exit 77
fi
status=0
run() {  # name, command...
  local name=$1
  shift
  local log
  log=$(mktemp)
  if "$@" --gtest_filter="$filter" --gtest_brief=1 >"$log" 2>&1; then
    echo "isa_check: $name: $(grep -E '^\[  PASSED  \]' "$log")"
  else
    status=1
    echo "isa_check: $name: FAILED" >&2
    grep -v 'TCG doesn.t support requested feature' "$log" | tail -40 >&2
  fi
  rm -f "$log"
}
# Two threads, as on the machines the benchmarks ran on; QEMU's warnings about CPUID bits its TCG
# lacks (rdseed, sha-ni, ...) are about features lmquant never asks for.
export OMP_NUM_THREADS=2
run "EPYC-Rome (AVX2, no AVX-512, no VNNI; emulated)" qemu-x86_64 -cpu EPYC-Rome "$tests"
run "Nehalem (SSE4.2, no AVX; emulated)" qemu-x86_64 -cpu Nehalem "$tests"
run "native, oneDNN capped to AVX2" env ONEDNN_MAX_CPU_ISA=AVX2 "$tests"
run "native, everything capped to AVX2 (oneDNN, OpenBLAS, the int8 kernel, the vector loops)" \
  env ONEDNN_MAX_CPU_ISA=AVX2 LMQUANT_INT8_ISA=avx2 OPENBLAS_CORETYPE=Haswell \
  LMQUANT_VECTOR_ISA=avx2 "$tests"
run "native, the vector loops at the baseline" env LMQUANT_VECTOR_ISA=baseline "$tests"
exit $status
