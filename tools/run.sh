#!/usr/bin/env bash
# Installs and builds what the CLI needs (tools/setup.sh --cli: not the test suite), then runs
# build/lmquant with the arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --cli >&2
exec build/lmquant "$@"
