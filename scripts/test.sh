#!/usr/bin/env bash
# Builds clipes (Release) and runs the test suite. Usage: scripts/test.sh [ctest arguments...]
# e.g. scripts/test.sh -L unit      (only the unit tests)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
ctest --preset release -j "$(nproc)" "$@"
