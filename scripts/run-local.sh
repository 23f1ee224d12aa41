#!/usr/bin/env bash
# Local presenced demo: a Mosquitto on 127.0.0.1, presenced, and a few simulated devices, with
# every state change shown live.
#
#   scripts/run-local.sh [--devices N] [--duration SECONDS] [--no-story] [--broker-ext]
#
# Devices are plain Mosquitto clients: a birth `online` published retained with mosquitto_pub,
# a last-will `offline` held by a mosquitto_sub (--will-*) that is killed with SIGKILL to
# "crash" the device, and a heartbeat every 2 s. The story (on by default) crashes a device, lets
# another blip inside offline_grace, brings the first back, and restarts the broker; presenced
# should declare exactly one device offline, and nobody during the broker restart.
#
# --broker-ext loads build/broker-ext/mosquitto_presence.so into the broker: presenced then also
# sees every client's connect/disconnect, including the short-lived mosquitto_pub clients this
# script uses for heartbeats (they show up as devices of their own).
#
# Environment: BUILD_DIR or PRESENCE_BUILD_DIR (default ./build), MQTT_PORT (18830),
# HTTP_PORT (19188).
# Needs: mosquitto, mosquitto-clients, cmake toolchain (builds presenced if missing); python3 and
# curl make the output nicer but are optional.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-${PRESENCE_BUILD_DIR:-$ROOT/build}}
MQTT_PORT=${MQTT_PORT:-18830}
HTTP_PORT=${HTTP_PORT:-19188}
DEVICES=5
DURATION=0
STORY=1
BROKER_EXT=0

while [ $# -gt 0 ]; do
  case "$1" in
    --devices) DEVICES=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --no-story) STORY=0; shift ;;
    --broker-ext) BROKER_EXT=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "run-local.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# Same package policy as scripts/demo.sh and scripts/test.sh: install what is missing (apt-get).
if [ -f "$ROOT/scripts/deps.sh" ]; then
  . "$ROOT/scripts/deps.sh"
  presence_install_deps "${PRESENCE_PACKAGES[@]}"
fi

MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
for tool in "$MOSQUITTO" mosquitto_pub mosquitto_sub; do
  command -v "$tool" >/dev/null 2>&1 || { echo "run-local.sh: $tool not found (apt-get install mosquitto mosquitto-clients)" >&2; exit 1; }
done

PRESENCED=$BUILD_DIR/presence/app/presenced
PLUGIN=$BUILD_DIR/broker-ext/mosquitto_presence.so
if [ ! -x "$PRESENCED" ]; then
  echo "== building presenced in $BUILD_DIR"
  [ -f "$BUILD_DIR/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD_DIR" >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target presenced
fi
if [ "$BROKER_EXT" = 1 ] && [ ! -f "$PLUGIN" ]; then
  cmake --build "$BUILD_DIR" -j2 --target mosquitto_presence
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/presenced-local-XXXXXX")
PIDS=()          # everything we started, killed on exit (by pid, nothing else)
declare -A DEV_SUB=() DEV_HB=()
BROKER_PID=

cleanup() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "== logs were in $WORK (removed)"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

mqtt_up() { mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t run-local/probe -n >/dev/null 2>&1; }

start_broker() {
  sed "s/^listener 1883 127.0.0.1$/listener $MQTT_PORT 127.0.0.1/" "$ROOT/config/mosquitto.conf" >"$WORK/mosquitto.conf"
  if [ "$BROKER_EXT" = 1 ]; then
    printf 'plugin %s\nplugin_opt_basic_auth defer\nplugin_opt_node local\n' "$PLUGIN" >>"$WORK/mosquitto.conf"
  fi
  "$MOSQUITTO" -c "$WORK/mosquitto.conf" >>"$WORK/mosquitto.log" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  for _ in $(seq 100); do mqtt_up && return 0; sleep 0.1; done
  echo "run-local.sh: mosquitto did not start on 127.0.0.1:$MQTT_PORT:" >&2
  cat "$WORK/mosquitto.log" >&2
  exit 1
}

start_device() {
  local id=dev-$1
  mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i "$id" -k 5 -t "devices/$id/cmd" \
    --will-topic "devices/$id/status" --will-payload offline --will-retain --will-qos 1 >/dev/null 2>&1 &
  DEV_SUB[$1]=$!
  PIDS+=("$!")
  sleep 0.2
  mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -r -t "devices/$id/status" \
    -m "{\"state\":\"online\",\"site\":\"lab\",\"firmware\":\"1.0.$1\"}"
  (
    while kill -0 "${DEV_SUB[$1]}" 2>/dev/null; do
      mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 0 -t "devices/$id/heartbeat" -m '{}' >/dev/null 2>&1 || true
      sleep 2
    done
  ) &
  DEV_HB[$1]=$!
  PIDS+=("$!")
}

crash_device() {
  # No DISCONNECT: the broker publishes the will. (wait: reap quietly, no "Killed" job notice.)
  { kill -9 "${DEV_SUB[$1]}" && wait "${DEV_SUB[$1]}"; } 2>/dev/null || true
  { kill "${DEV_HB[$1]}" && wait "${DEV_HB[$1]}"; } 2>/dev/null || true
}

show_metrics() {
  if command -v curl >/dev/null 2>&1; then
    curl -s "http://127.0.0.1:$HTTP_PORT/metrics" |
      grep -E '^presence_(devices|transitions_total|blind|restart_grace_active|broker_connected|broker_restarts_total|parse_errors_total)' |
      grep -v ' 0$' || true
  fi
}

# Short windows so the story runs in about a minute; production defaults are in
# config/presenced.yaml and docs/configuration.md.
cat >"$WORK/presenced.yaml" <<EOF
mqtt:
  uri: tcp://127.0.0.1:$MQTT_PORT
  client_id: presenced-local
  clean_session: true
  reconnect:
    min_backoff: 200ms
    max_backoff: 2s
presence:
  offline_grace: 5s
  online_stable_for: 5s
  heartbeat_timeout_floor: 6s
  heartbeat_default_interval: 2s
  restart_grace_min: 5s
  restart_grace_settle: 3s
  restart_grace_max: 30s
output:
  coalesce_interval: 200ms
http:
  listen: 127.0.0.1:$HTTP_PORT
store:
  dir: $WORK/store
log:
  level: info
EOF

say "mosquitto on 127.0.0.1:$MQTT_PORT$([ "$BROKER_EXT" = 1 ] && echo " with broker-ext")"
start_broker

say "presenced (log: $WORK/presenced.log, http://127.0.0.1:$HTTP_PORT/metrics)"
"$PRESENCED" --check-config "$WORK/presenced.yaml" >/dev/null
"$PRESENCED" --config "$WORK/presenced.yaml" >"$WORK/presenced.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
  grep -q "subscribed" "$WORK/presenced.log" 2>/dev/null && break
  sleep 0.1
done

# Live view: every retained state message presenced publishes, one line each.
FORMAT='
import json, sys, time
for line in sys.stdin:
    topic, _, payload = line.rstrip("\n").partition(" ")
    try:
        j = json.loads(payload)
    except ValueError:
        continue
    now = time.strftime("%H:%M:%S")
    if topic.endswith("/fleet"):
        c = j.get("counts", {})
        flags = " BLIND" if j.get("blind") else ""
        flags += " restart-grace" if j.get("restart_grace") else ""
        print(f"{now}  fleet      " + " ".join(f"{k}={v}" for k, v in c.items() if v) + flags, flush=True)
    elif topic.endswith("/service"):
        state = j.get("state", "?")
        print(f"{now}  presenced  {state}", flush=True)
    else:
        why = j.get("reason", "")
        if j.get("disconnect_reason"):
            why += "/" + j["disconnect_reason"]
        device = j.get("device", "?")
        state = j.get("state", "?")
        print(f"{now}  {device:<10} {state:<9} ({why})", flush=True)
'
# Through a fifo rather than a pipe so both ends have a pid we can stop.
mkfifo "$WORK/view"
if command -v python3 >/dev/null 2>&1; then
  python3 -u -c "$FORMAT" <"$WORK/view" &
else
  cat <"$WORK/view" &
fi
PIDS+=("$!")
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -v -t 'presence/#' >"$WORK/view" &
PIDS+=("$!")

say "$DEVICES devices come online (births retained, last-wills set, heartbeats every 2 s)"
for i in $(seq 1 "$DEVICES"); do start_device "$i"; done

if [ "$STORY" = 1 ] && [ "$DEVICES" -ge 3 ]; then
  sleep 4
  say "dev-2 crashes (SIGKILL): last-will -> suspect, offline after offline_grace (5 s)"
  crash_device 2
  sleep 8
  say "dev-3 blips: crashes and is back after 2 s, inside offline_grace -> suspect, online, never offline"
  crash_device 3
  sleep 2
  start_device 3
  sleep 6
  say "dev-2 comes back: online once it has stayed connected for online_stable_for (5 s)"
  start_device 2
  sleep 8
  say "broker restart (SIGKILL, then start): presenced is blind, then holds judgement in restart grace"
  { kill -9 "$BROKER_PID" && wait "$BROKER_PID"; } 2>/dev/null || true
  sleep 2
  start_broker
  sleep 14
  say "metrics (non-zero)"
  show_metrics
fi

if [ "$DURATION" -gt 0 ]; then
  sleep "$DURATION"
else
  say "running; Ctrl-C stops everything"
  wait
fi
