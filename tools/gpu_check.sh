#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and PyTorch: builds lmquant against PyTorch's CUDA LibTorch,
# runs the GPU tests and a GPU-vs-CPU benchmark. Boost.Program_options, nlohmann-json, libcurl
# and OpenSSL come from Debian packages, unpacked into a local prefix when there is no apt.
# Usage: tools/gpu_check.sh [OUTDIR]   (writes gpu_tests.log and gpu_bench.json there)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
mkdir -p "$out"
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
extra=()
if ! dpkg -s libboost-program-options-dev nlohmann-json3-dev libgtest-dev >/dev/null 2>&1; then
  if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && apt-get install -y -qq libboost-program-options-dev nlohmann-json3-dev \
      libgtest-dev libcurl4-openssl-dev libssl-dev cmake g++ >/dev/null
  elif [ -d .debs ]; then
    # Packages downloaded elsewhere (apt-get download ...) and carried in .debs/.
    mkdir -p .prefix && for f in .debs/*.deb; do dpkg -x "$f" .prefix; done
    extra+=("-DCMAKE_PREFIX_PATH=$torch_prefix;$PWD/.prefix/usr")
  fi
fi
[ ${#extra[@]} -gt 0 ] || extra+=("-DCMAKE_PREFIX_PATH=$torch_prefix")
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release "${extra[@]}" >/dev/null
cmake --build build-cuda -j"$(nproc)"
python3 -c 'import torch; print(torch.cuda.get_device_name(0))' | tee "$out/device.txt"
build-cuda/lmquant_tests --gtest_filter='Gpu*:LstmLm*:Nll*:Quantize*' 2>&1 | tee "$out/gpu_tests.log"
# WikiText-2 when $LMQUANT_DATA holds it (carry it there), else the tiny fixture.
if [ -n "${LMQUANT_DATA:-}" ]; then corpus=(--corpus wikitext2 --data-dir "$LMQUANT_DATA" --no-download)
else corpus=(--corpus tests/data/tiny --eval-tokens 20 --train-batches 1); fi
for dev in cuda cpu; do
  build-cuda/lmquant bench --device "$dev" "${corpus[@]}" --what eval,train,quant --json \
    >"$out/bench_$dev.json" || true
done
