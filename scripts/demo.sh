#!/usr/bin/env bash
# The main job: build, then run the compose.yaml topology natively on 127.0.0.1 and show live
# presence and alerts in this terminal:
#   mosquitto + broker-ext plugin   config/compose/mosquitto.conf (listener and plugin path local)
#   presence-alert-sink             shows every PagerDuty / Slack / webhook payload it receives
#   presenced                       config/compose/presenced.yaml
#   presence-sim                    config/compose/sim-demo.yaml: 200 devices and a ten-minute
#                                   story (blip, site drop, flapping beta firmware, real deaths)
#
#   bash scripts/demo.sh                       the whole story (about 10 minutes), Ctrl-C to stop
#   bash scripts/demo.sh --duration 120        stop after 120 s
#   bash scripts/demo.sh --replay [ARGS...]    the core-only replay demo (no broker, 30 s)
#
# Ports (override with the environment): MQTT_PORT 18830, HTTP_PORT 19188, SINK_PORT 19180.
# Everything it starts is stopped on exit; its files stay in the printed work directory.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/scripts/deps.sh"
presence_install_deps "${PRESENCE_PACKAGES[@]}"

build="${PRESENCE_BUILD_DIR:-$here/build}"
jobs="${PRESENCE_JOBS:-$(nproc)}"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

if [ "${1:-}" = "--replay" ]; then
  shift
  cmake --build "$build" -j "$jobs" --target presence-replay >/dev/null
  story="$here/config/replay/demo.replay"
  echo "== presenced core demo: replaying $story"
  echo "   (time in simulated seconds; '.' lines are input events, heartbeats hidden)"
  exec "$build/presence/tools/presence-replay" --show-events --final \
    --speed "${PRESENCE_DEMO_SPEED:-45}" "$@" "$story"
fi

duration=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

echo "== building presenced, presence-sim, presence-alert-sink and the broker-ext plugin"
cmake --build "$build" -j "$jobs" --target presenced presence-sim presence-alert-sink \
  mosquitto_presence >/dev/null

MQTT_PORT=${MQTT_PORT:-18830}
HTTP_PORT=${HTTP_PORT:-19188}
SINK_PORT=${SINK_PORT:-19180}
work=$(mktemp -d "${TMPDIR:-/tmp}/presenced-demo-XXXXXX")
mkdir -p "$work/store"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo
  echo "== demo stopped; logs, truth and recorded alerts are in $work"
}
trap cleanup EXIT INT TERM

wait_port() {  # wait_port PORT NAME: up to 20 s for a listener on 127.0.0.1:PORT
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo.sh: $2 did not listen on 127.0.0.1:$1; see $work" >&2
  exit 1
}

# The compose broker config, with a loopback listener and the plugin from this build.
sed -e "s|^listener 1883.*|listener $MQTT_PORT 127.0.0.1|" \
    -e "s|^plugin /.*|plugin $build/broker-ext/mosquitto_presence.so|" \
    -e "s|^log_dest stdout|log_dest file $work/mosquitto.log|" \
    "$here/config/compose/mosquitto.conf" >"$work/mosquitto.conf"
"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$work/mosquitto.conf" \
  >>"$work/mosquitto.log" 2>&1 &
pids+=($!)
wait_port "$MQTT_PORT" mosquitto

"$build/presence/tools/alert-sink/presence-alert-sink" --port "$SINK_PORT" --secret "${WEBHOOK_SECRET:-demo-secret}" \
  --record "$work/alerts.jsonl" >"$work/alerts.log" 2>&1 &
pids+=($!)
wait_port "$SINK_PORT" presence-alert-sink

export MQTT_URI="tcp://127.0.0.1:$MQTT_PORT"
export PRESENCED_HTTP_LISTEN="127.0.0.1:$HTTP_PORT"
export PRESENCED_HTTP_TOKEN="${PRESENCED_HTTP_TOKEN:-demo-token}"
export PRESENCED_STORE_DIR="$work/store"
export ALERT_SINK_URL="http://127.0.0.1:$SINK_PORT"
export WEBHOOK_SECRET="${WEBHOOK_SECRET:-demo-secret}"
"$build/presence/app/presenced" --config "$here/config/compose/presenced.yaml" \
  >"$work/presenced.log" 2>&1 &
pids+=($!)
wait_port "$HTTP_PORT" presenced

echo "== mosquitto 127.0.0.1:$MQTT_PORT  presenced http://127.0.0.1:$HTTP_PORT  alert sink :$SINK_PORT"
echo "== work directory: $work"
echo "== live: STATE lines are presenced's retained presence/devices/{id}; ALERT lines are what"
echo "   the PagerDuty/Slack/webhook receiver got; FLEET lines are presenced's counts (every 15 s)."
echo

# Live view: one subscriber (one client id, so it is one entry in presenced's device list) for
# the per-device states and the fleet summary, printed at most every 15 s.
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i presence-demo-viewer -v \
    -t 'presence/devices/#' -t presence/fleet 2>/dev/null |
  { last_fleet=0
    while IFS= read -r line; do
      topic=${line%% *}
      if [ "$topic" = presence/fleet ]; then
        now=$(date +%s)
        if [ $((now - last_fleet)) -ge 15 ]; then
          last_fleet=$now
          printf '%s FLEET %s\n' "$(date +%T)" "$(sed -n 's/.*"counts":\({[^}]*}\).*/\1/p' <<<"$line")"
        fi
        continue
      fi
      dev=$(sed -n 's/.*"device":"\([^"]*\)".*/\1/p' <<<"$line")
      st=$(sed -n 's/.*"state":"\([^"]*\)".*/\1/p' <<<"$line")
      why=$(sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' <<<"$line")
      [ -n "$dev" ] && printf '%s STATE %-12s %-9s %s\n' "$(date +%T)" "$dev" "$st" "$why"
    done; } &
pids+=($!)
# Live alerts, as the receiver prints them.
tail -n +1 -F "$work/alerts.log" 2>/dev/null | while IFS= read -r line; do
  printf '%s ALERT %s\n' "$(date +%T)" "$line"
done &
pids+=($!)

sim_args=(--broker "127.0.0.1:$MQTT_PORT" --scenario "$here/config/compose/sim-demo.yaml"
          --out "$work/truth.jsonl" --progress 0)
[ "$duration" != 0 ] && sim_args+=(--duration "${duration}s")
"$build/presence/tools/sim/presence-sim" "${sim_args[@]}" >"$work/sim.log" 2>&1 &
sim=$!
pids+=($sim)
wait "$sim" || true
echo "== the simulated story ended; final fleet:"
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i presence-demo-viewer-final -t presence/fleet \
  -C 1 -W 3 2>/dev/null || true
