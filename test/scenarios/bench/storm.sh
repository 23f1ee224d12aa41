#!/usr/bin/env bash
# Storm benchmark (issue 6, docs/benchmarks.md "Storm: 20,000 connections dropped at once"):
# 20,000 real connections over two bridged mosquitto brokers dropped at once, run with broker-ext
# storm protection off and then on. Prints one JSON line {"name","value","unit"} per measurement;
# the full scorecard line of each run goes to stderr. Takes ~2 min per run.
#
#   bash test/scenarios/bench/storm.sh                 off + on, 1 run each (the load balancer drop)
#   bash test/scenarios/bench/storm.sh --runs 2        2 runs per mode
#   bash test/scenarios/bench/storm.sh --restart       the variant: both brokers restarted instead
#   bash test/scenarios/bench/storm.sh --no-naive      presenced in presence mode only
#   bash test/scenarios/bench/storm.sh --keep DIR      keep each run's files in DIR/<mode>-<n>
#
# PRESENCE_BUILD_DIR (default ./build) must hold presenced, presence-sim, presence-scenario and
# broker-ext/mosquitto_presence.so; this script builds them if needed. Needs mosquitto and
# mosquitto_sub (Debian: mosquitto, mosquitto-clients). Exit status: 0, or 2 if a run could not
# be set up. Results are reported, never asserted.
set -uo pipefail
here="$(cd "$(dirname "$0")/../../.." && pwd)"
build="${PRESENCE_BUILD_DIR:-$here/build}"
runs=1
file="$here/test/scenarios/bench/storm-20k.yaml"
prefix=storm_20k
keep=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --restart) file="$here/test/scenarios/bench/storm-20k-restart.yaml"; prefix=storm_20k_restart; shift ;;
    --no-naive) extra+=(--no-naive); shift ;;
    --keep) keep="$2"; shift 2 ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "storm.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ ! -d "$build" ]; then
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 2
fi
cmake --build "$build" -j "${PRESENCE_JOBS:-2}" --target presenced presence-sim presence-scenario \
  mosquitto_presence >/dev/null || exit 2

rc=0
for mode in off on; do
  for i in $(seq 1 "$runs"); do
    args=("$file" --scale full --storm-protection "$mode" --bench "$prefix.protection_$mode.run$i")
    [ -n "$keep" ] && args+=(--keep "$keep/$mode-$i")
    # Exit 1 only means "an assertion would fail" (full scale is reported, not asserted).
    "$build/test/scenarios/presence-scenario" "${args[@]}" "${extra[@]}"
    r=$?
    [ $r -ge 2 ] && rc=2
  done
done
exit $rc
