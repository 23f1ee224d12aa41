#!/usr/bin/env bash
# One bounded libFuzzer run (CTest label "fuzz", docs/fuzzing.md):
#   run_fuzz.sh <fuzz binary> <seed corpus dir> <work dir> <seconds> [extra libFuzzer flags]
# New inputs go to <work dir>/corpus (never into the repo); a crash leaves <work dir>/crash-* and
# fails the test. Prints one JSON line with the exec count, like the benchmarks.
set -euo pipefail
bin="$1" seeds="$2" work="$3" seconds="$4"
shift 4
mkdir -p "$work/corpus"
log="$work/fuzz.log"
status=0
# -timeout: one input taking 10 s is a hang finding. -rss_limit_mb: an input that makes the
# target allocate 2 GB is a memory finding. -max_len: the parsers' own limits are ~64 KiB.
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$work/" "$@" "$work/corpus" "$seeds" >"$log" 2>&1 || status=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
echo "{\"name\":\"fuzz_$(basename "$bin")_execs\",\"value\":${execs:-0},\"unit\":\"execs\",\"seconds\":$seconds}"
if [ "$status" -ne 0 ]; then
  tail -60 "$log"
  echo "fuzz: $(basename "$bin") found something (exit $status); the input is in $work/" >&2
fi
exit "$status"
