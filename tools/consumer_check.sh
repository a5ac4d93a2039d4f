#!/usr/bin/env bash
# Installs lmquant from build/ into a scratch prefix and builds + runs tests/consumer against it
# with find_package(lmquant), then imports the installed Python module (when it was built) from
# the prefix with Debian's python3: the checks that the installed package works for users.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install build --prefix "$prefix" >/dev/null
cmake -S tests/consumer -B "$prefix/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer-build" -j"$(nproc)" >/dev/null
"$prefix/consumer-build/consumer"
py_dir=$(ls -d "$prefix"/lib/python3*/dist-packages 2>/dev/null | head -1 || true)
if [ -n "$py_dir" ] && [ -f "$py_dir/lmquant/__init__.py" ]; then
  (cd "$prefix" && PYTHONPATH="$py_dir" /usr/bin/python3 -c \
    "import lmquant; print('python: lmquant', lmquant.__version__, 'from', lmquant.__file__)")
fi
