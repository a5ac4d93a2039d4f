#!/usr/bin/env bash
# Installs and builds what is needed (tools/setup.sh), then runs build/lmquant with the arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh >&2
exec build/lmquant "$@"
