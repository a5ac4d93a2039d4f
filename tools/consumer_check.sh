#!/usr/bin/env bash
# Installs lmquant from build/ into a scratch prefix and builds + runs tests/consumer against it
# with find_package(lmquant): the check that the installed package works for users.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install build --prefix "$prefix" >/dev/null
cmake -S tests/consumer -B "$prefix/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer-build" -j"$(nproc)" >/dev/null
"$prefix/consumer-build/consumer"
