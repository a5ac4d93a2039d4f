#!/usr/bin/env bash
# Installs and builds what is needed (tools/setup.sh), then runs the test suite with CTest.
# Real-data tests read $LMQUANT_DATA (a folder holding wikitext-2/) and skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cd build
ctest --output-on-failure "$@"   # serial: each test uses every core
