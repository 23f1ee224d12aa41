#!/usr/bin/env bash
# Builds everything and runs every test (unit + integration) under CTest.
#   scripts/test.sh            full suite
#   scripts/test.sh -L unit    only one CTest label (unit, integration, scenario)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/scripts/deps.sh"
presence_install_deps "${PRESENCE_PACKAGES[@]}"

build="${PRESENCE_BUILD_DIR:-$here/build}"
jobs="${PRESENCE_JOBS:-$(nproc)}"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWITH_WERROR=ON >/dev/null
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure --timeout 300 -j "$jobs" "$@"
