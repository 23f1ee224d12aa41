#!/usr/bin/env bash
# Runs every scenario (or the ones named) and prints one JSON scorecard line per scenario
# (docs/scenarios.md).
#
#   bash test/scenarios/run.sh                      all ten, small scale (what CI runs)
#   bash test/scenarios/run.sh --scale full         the docs' scorecard (run by hand)
#   bash test/scenarios/run.sh 03 05                only scenarios whose file starts with 03 / 05
#
# PRESENCE_BUILD_DIR (default ./build) must hold presenced, presence-sim, presence-scenario and
# broker-ext/mosquitto_presence.so; this script builds them if needed. Exit status: non-zero if
# any scenario's assertions failed (small scale asserts; full scale only reports).
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
build="${PRESENCE_BUILD_DIR:-$here/build}"
scale=small
picks=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale="$2"; shift 2 ;;
    --scale=*) scale="${1#--scale=}"; shift ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) picks+=("$1"); shift ;;
  esac
done
if [ ! -d "$build" ]; then
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 2
fi
cmake --build "$build" -j "${PRESENCE_JOBS:-2}" --target presenced presence-sim presence-scenario \
  mosquitto_presence >/dev/null || exit 2

rc=0
for f in "$here"/test/scenarios/[0-9]*.yaml; do
  base="$(basename "$f")"
  if [ ${#picks[@]} -gt 0 ]; then
    hit=0
    for p in "${picks[@]}"; do [[ "$base" == "$p"* ]] && hit=1; done
    [ $hit = 1 ] || continue
  fi
  "$build/test/scenarios/presence-scenario" "$f" --scale "$scale" || rc=1
done
exit $rc
