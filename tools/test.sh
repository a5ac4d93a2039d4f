#!/usr/bin/env bash
# Installs and builds what is needed (tools/setup.sh), then runs the test suite with CTest.
# Real-data tests read $LMQUANT_DATA (a folder holding wikitext-2/) and skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cd build
# Sleeping OpenMP waits: a CI machine shared with another job must not starve the tests
# (CMakeLists.txt sets the same per test; this covers the scripts they start).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ctest --output-on-failure "$@"   # serial: each test uses every core
