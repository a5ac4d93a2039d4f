#!/usr/bin/env bash
# Installs lmquant's build and run dependencies from Debian 12 packages (idempotent), then builds
# into build/ (the CLI lands at build/lmquant).
# Usage: tools/setup.sh [--no-build | --cli]
#   --no-build  packages only
#   --cli       build only what the CLI needs (the library, the sentencepiece shim, build/lmquant):
#               tools/run.sh; without it every target, the test suite included (tools/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  build-essential cmake pkg-config
  libtorch-dev                  # LibTorch 1.13 (CPU)
  libopenblas0-openmp           # without it LibTorch falls back to the ~12x slower reference BLAS
  libboost-program-options-dev libgtest-dev
  nlohmann-json3-dev            # JSON
  libcurl4-openssl-dev          # HTTP download
  libssl-dev                    # SHA-256
  zlib1g-dev                    # zip archives (WikiText-103 is published as a zip)
  libsentencepiece-dev          # subword tokenizer
  libdnnl-dev                   # oneDNN 2.6: the int8 engine's matrix products
  gnuplot-nox                   # report plots
)
# The Python module and the tests (not needed by the CLI: tools/run.sh skips them).
python_packages=(
  python3-torch                 # torch 1.13 for /usr/bin/python3: the same LibTorch
  pybind11-dev python3-dev      # the extension module
  python3-pytest                # tests/python
  qemu-user                     # tools/isa_check.sh: the tests as an AVX2-only and an SSE4.2 CPU
  python3-onnx                  # tests/python: the ONNX checker on lmquant export's graphs
)
[ "${1:-}" = "--cli" ] || packages+=("${python_packages[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# ONNX Runtime (CPU, Linux x64) from npm's onnxruntime-node, into .cache/node: the peer engine
# that tools/onnx/ort_eval.js runs lmquant's ONNX exports in (tests/python, lmquant bench). Its
# install script only fetches GPU providers from nuget.org: skipped (--ignore-scripts).
if [ "${1:-}" != "--cli" ] && [ ! -f .cache/node/node_modules/onnxruntime-node/package.json ]; then
  if ! command -v npm >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
  fi
  echo "setup: installing onnxruntime-node into .cache/node" >&2
  npm install --silent --no-audit --no-fund --ignore-scripts --prefix .cache/node \
    onnxruntime-node@1.31.1 >/dev/null || echo "setup: onnxruntime-node not installed (npm failed): the ONNX Runtime tests will skip" >&2
fi
[ "${1:-}" = "--no-build" ] && exit 0
targets=()
[ "${1:-}" = "--cli" ] && targets=(--target lmquant_cli)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${LMQUANT_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)" "${targets[@]}"
