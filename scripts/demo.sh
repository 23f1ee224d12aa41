#!/usr/bin/env bash
# The main job: build, then run the compose.yaml topology natively on 127.0.0.1 and show live
# presence and alerts in this terminal:
#   mosquitto + broker-ext plugin   config/compose/mosquitto.conf (listener and plugin path local)
#   presence-alert-sink             receives every PagerDuty / Slack / webhook payload
#   presenced                       config/compose/presenced.yaml (dashboard and /v1 API)
#   presence-sim                    config/compose/sim-demo.yaml: 200 devices and a ten-minute
#                                   story (blip, site drop, flapping beta firmware, real deaths)
#
#   bash scripts/demo.sh                       the whole story (about 10 minutes), Ctrl-C to stop
#   bash scripts/demo.sh --duration 120        stop after 120 s
#   bash scripts/demo.sh --ha [--duration N]   the HA pair (docs/ha.md): etcd on loopback and two
#                                              presenced; the leader is killed (-9) mid-story and
#                                              the standby takes over, then it is started again
#   bash scripts/demo.sh --replay [ARGS...]    the core-only replay demo (no broker, 30 s)
#   bash scripts/demo.sh --alert-view FILE     the ALERT lines of a recorded alerts.jsonl
#
# Ports (override with the environment): MQTT_PORT 18830, HTTP_PORT 19188, SINK_PORT 19180;
# with --ha also HTTP_PORT_B 19189 (the second presenced), HA_ETCD_PORT 12379, HA_ETCD_PEER_PORT 12380.
# It exits by itself at --duration or at the story's end; everything it started is stopped (by
# pid, bounded) on exit; its files (every log, the broker's too) stay in the printed work directory.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/scripts/deps.sh"
presence_install_deps "${PRESENCE_PACKAGES[@]}"

build="${PRESENCE_BUILD_DIR:-$here/build}"
jobs="${PRESENCE_JOBS:-$(nproc)}"
# An existing build tree keeps its own settings (the test suite runs this on its build tree).
[ -f "$build/CMakeCache.txt" ] ||
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

now() { printf '%(%T)T' -1; }

# ALERT lines from the receiver's record (one JSON line per request): one line per page, at the
# time the first sink got it, with every sink that got it within 3 s on the same line (PagerDuty
# and the webhook carry the dedup_key; Slack names it in its context block).
alert_fields='select(.ok) | .body as $b | .t as $t
  | if .kind == "pagerduty" then
      ["pagerduty", $b.event_action, $b.dedup_key, $b.payload.severity // "", "", $b.payload.summary // ""]
    elif .kind == "webhook" then
      ["webhook", $b.action, $b.dedup_key, $b.severity, $b.type, $b.summary]
    else
      ([$b.blocks[]? | .. | strings | capture("dedup_key `(?<k>[^`]+)`").k] | first) as $k
      | ($b.text // "" | .[0:40]) as $head
      | ["slack", (if ($head | test("RESOLVED")) then "resolve" elif ($head | test("NOTICE")) then "notify"
                  elif $k then "trigger" else "summary" end), $k // "", "", "", $b.text // ""]
    end
  | [($t | sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601 | strflocaltime("%T"))] + .
  | map(tostring | gsub("[\t\n\u001f]"; " ")) | join("\u001f")'
view_alerts() {
  local t kind action key sev type summary id
  declare -A at sinks act sv ty sm shown
  local order=()
  flush() {  # flush [all]: print the pages whose 3 s are up
    local keep=() k
    for k in "${order[@]}"; do
      if [ "${1:-}" = all ] || [ $((SECONDS - at[$k])) -ge 3 ]; then
        printf '%s ALERT %-8s %-8s %-15s %s "%s" -> %s\n' "${shown[$k]}" \
          "${act[$k]^^}" "${sv[$k]:-?}" "${ty[$k]:-?}" "${k%%|*}" "${sm[$k]}" "${sinks[$k]# }"
        unset "at[$k]" "sinks[$k]" "act[$k]" "sv[$k]" "ty[$k]" "sm[$k]" "shown[$k]"
      else
        keep+=("$k")
      fi
    done
    order=("${keep[@]}")
  }
  while :; do
    if IFS=$'\x1f' read -r -t 1 t kind action key sev type summary; then
      if [ -z "$key" ]; then  # a Slack digest of several alerts (rate limit): as it came
        printf '%s ALERT slack digest: %s\n' "$t" "$summary"
        continue
      fi
      id="$key|$action"
      if [ -z "${at[$id]+x}" ]; then
        at[$id]=$SECONDS; shown[$id]=$t; sinks[$id]=""; act[$id]=$action; order+=("$id")
      fi
      sinks[$id]+=" $kind"
      [ -n "$sev" ] && sv[$id]=$sev
      [ -n "$type" ] && ty[$id]=$type
      [ -n "$summary" ] && [ "$kind" != slack ] && sm[$id]=$summary
      [ -z "${sm[$id]:-}" ] && sm[$id]=$summary
    elif [ $? -le 128 ]; then
      break  # end of input
    fi
    [ ${#order[@]} -gt 0 ] && flush
  done
  [ ${#order[@]} -gt 0 ] && flush all
  true
}

# --alert-view FILE: only the ALERT view over a recorded alerts.jsonl (the sink's --record file),
# for a look at a past run and for test/integration/packaging/demo_alert_view_test.sh.
if [ "${1:-}" = "--alert-view" ]; then
  [ -r "${2:-}" ] || { echo "demo.sh: --alert-view needs a readable alerts.jsonl" >&2; exit 2; }
  jq -r "$alert_fields" <"$2" | view_alerts
  exit 0
fi

if [ "${1:-}" = "--replay" ]; then
  shift
  cmake --build "$build" -j "$jobs" --target presence-replay >/dev/null
  story="$here/config/replay/demo.replay"
  echo "== presenced core demo: replaying $story"
  echo "   (time in simulated seconds; '.' lines are input events, heartbeats hidden)"
  exec "$build/presence/tools/replay/presence-replay" --show-events --final \
    --speed "${PRESENCE_DEMO_SPEED:-45}" "$@" "$story"
fi

duration=0
ha=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=${2:-}; shift 2 || true ;;
    --ha) ha=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$duration" in
  ''|*[!0-9]*) echo "demo.sh: --duration takes whole seconds (e.g. --duration 120)" >&2; exit 2 ;;
esac
if [ "$ha" = 1 ]; then
  etcd_bin=$(command -v etcd || true)
  [ -n "$etcd_bin" ] || { echo "demo.sh: --ha needs etcd (apt-get install etcd-server)" >&2; exit 2; }
fi

echo "== building presenced, presence-sim, presence-alert-sink and the broker-ext plugin"
cmake --build "$build" -j "$jobs" --target presenced presence-sim presence-alert-sink \
  mosquitto_presence >/dev/null

MQTT_PORT=${MQTT_PORT:-18830}
HTTP_PORT=${HTTP_PORT:-19188}
SINK_PORT=${SINK_PORT:-19180}
scenario="$here/config/compose/sim-demo.yaml"
work=$(mktemp -d "${TMPDIR:-/tmp}/presenced-demo-XXXXXX")
mkdir -p "$work/store" "$work/store-b"
# A pipe nobody writes to: `read -t` on it is a sleep without a child process to leave behind.
mkfifo "$work/.tick"
exec 9<>"$work/.tick"
pause() { read -r -t "$1" -u 9 || true; }

# Every process this script starts, by pid (pipelines too: each stage is started on its own
# with a FIFO between them, so none is hidden behind `$!`).
pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local p
  # Newest first, each gone before the next is asked: presenced's final flush and clean MQTT
  # disconnect need the broker it was started after (all at once, the broker went first and
  # presenced logged "final flush not acknowledged"). Up to 5 s each, then SIGKILL.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[$i]}
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 1 50); do
      kill -0 "$p" 2>/dev/null || break
      pause 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  exec 9>&-
  rm -f "$work/.tick" "$work"/*.fifo
  echo
  echo "== demo stopped; logs (presenced.log, mosquitto.log, alerts.log), the simulator's truth"
  echo "   and the recorded alerts (alerts.jsonl) are in $work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_port() {  # wait_port PORT NAME PID: up to 20 s for a listener on 127.0.0.1:PORT
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    pause 0.1
  done
  echo "demo.sh: $2 did not listen on 127.0.0.1:$1; see $work/$2.log:" >&2
  tail -n 5 "$work/$2.log" >&2 2>/dev/null || true
  exit 1
}

# The compose broker config with a loopback listener and the plugin from this build. It logs to
# stdout, which is opened here, by this user: mosquitto started as root drops to its own user
# and could not open a file in the 0700 work directory.
sed -e "s|^listener 1883.*|listener $MQTT_PORT 127.0.0.1|" \
    -e "s|^plugin /.*|plugin $build/broker-ext/mosquitto_presence.so|" \
    "$here/config/compose/mosquitto.conf" >"$work/mosquitto.conf"
"$(command -v mosquitto || echo /usr/sbin/mosquitto)" -c "$work/mosquitto.conf" \
  >>"$work/mosquitto.log" 2>&1 &
pids+=($!)
wait_port "$MQTT_PORT" mosquitto "$!"

"$build/presence/tools/alert-sink/presence-alert-sink" --port "$SINK_PORT" \
  --secret "${WEBHOOK_SECRET:-demo-secret}" --record "$work/alerts.jsonl" >"$work/alerts.log" 2>&1 &
pids+=($!)
wait_port "$SINK_PORT" alerts "$!"

export MQTT_URI="tcp://127.0.0.1:$MQTT_PORT"
export PRESENCED_HTTP_LISTEN="127.0.0.1:$HTTP_PORT"
export PRESENCED_HTTP_TOKEN="${PRESENCED_HTTP_TOKEN:-demo-token}"
export PRESENCED_STORE_DIR="$work/store"
export ALERT_SINK_URL="http://127.0.0.1:$SINK_PORT"
export WEBHOOK_SECRET="${WEBHOOK_SECRET:-demo-secret}"
if [ "$ha" = 0 ]; then
  "$build/presence/app/presenced" --config "$here/config/compose/presenced.yaml" \
    >"$work/presenced.log" 2>&1 &
  pids+=($!)
  wait_port "$HTTP_PORT" presenced "$!"
else
  # The compose `ha` profile natively: one etcd on loopback, presenced-a and presenced-b (both
  # config/compose/presenced-ha.yaml; they differ in name, HTTP port and store). Its port
  # variables are not named ETCD_*: etcd reads those as its own flags.
  HTTP_PORT_B=${HTTP_PORT_B:-19189}
  HA_ETCD_PORT=${HA_ETCD_PORT:-12379}
  HA_ETCD_PEER_PORT=${HA_ETCD_PEER_PORT:-12380}
  export PRESENCED_ETCD_URL="http://127.0.0.1:$HA_ETCD_PORT"
  "$etcd_bin" --name demo --data-dir "$work/etcd" --listen-client-urls "$PRESENCED_ETCD_URL" \
    --advertise-client-urls "$PRESENCED_ETCD_URL" --listen-peer-urls "http://127.0.0.1:$HA_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$HA_ETCD_PEER_PORT" \
    --initial-cluster "demo=http://127.0.0.1:$HA_ETCD_PEER_PORT" --log-level warn \
    >"$work/etcd.log" 2>&1 &
  pids+=($!)
  wait_port "$HA_ETCD_PORT" etcd "$!"
  declare -A ha_pid ha_port=([presenced-a]=$HTTP_PORT [presenced-b]=$HTTP_PORT_B)
  ha_start() {  # ha_start NAME: one member of the pair, its log appended to NAME.log
    local store="$work/store"
    [ "$1" = presenced-b ] && store="$work/store-b"
    PRESENCED_HA_NAME=$1 PRESENCED_HTTP_LISTEN="127.0.0.1:${ha_port[$1]}" \
      PRESENCED_STORE_DIR=$store \
      "$build/presence/app/presenced" --config "$here/config/compose/presenced-ha.yaml" \
      >>"$work/$1.log" 2>&1 &
    ha_pid[$1]=$!
    pids+=($!)
    wait_port "${ha_port[$1]}" "$1" "$!"
  }
  ha_start presenced-a
  ha_start presenced-b
  # A member's role from its GET /v1/ha (loopback: no token), "" if it does not answer in 2 s.
  ha_role() {
    local body
    body=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET /v1/ha HTTP/1.0\r\n\r\n" >&3 && cat <&3' _ "${ha_port[$1]}" 2>/dev/null) || true
    # The body follows the headers' blank line; its top-level "role" (members carry roles too).
    printf '%s' "${body#*$'\r\n\r\n'}" | jq -r '.role // empty' 2>/dev/null || true
  }
  ha_leader() {  # the member that leads now, "" if none (yet)
    local n
    for n in presenced-a presenced-b; do
      [ "$(ha_role "$n")" = leader ] && { echo "$n"; return; }
    done
    true
  }
  leader=""
  for _ in $(seq 1 100); do leader=$(ha_leader); [ -n "$leader" ] && break; pause 0.2; done
  [ -n "$leader" ] || { echo "demo.sh: no presenced became the HA leader in 20 s; see $work/presenced-*.log" >&2; exit 1; }
fi

url="http://127.0.0.1:$HTTP_PORT"
cat <<EOF
== mosquitto 127.0.0.1:$MQTT_PORT   presenced $url   alert receiver 127.0.0.1:$SINK_PORT
== work directory: $work
== dashboard: $url/   (reads need no token on loopback; silences need the API token
   $PRESENCED_HTTP_TOKEN: type it into the form, or open $url/?token=$PRESENCED_HTTP_TOKEN)
== presencectl, in another terminal:
     export PRESENCE_URL=$url PRESENCE_TOKEN=$PRESENCED_HTTP_TOKEN
     $here/scripts/presencectl firing          # what is paging now
     $here/scripts/presencectl device ID       # one device: state, history, pages
== lines below: CHAPTER = the story, STATE = a device changed (presence/devices/{id}),
   ALERT = a page as the receiver got it (the sinks that got it at the end), FLEET = counts (every 30 s)

EOF
[ "$ha" = 1 ] && cat <<EOF
== HA pair (docs/ha.md): etcd $PRESENCED_ETCD_URL, presenced-a $url, presenced-b http://127.0.0.1:$HTTP_PORT_B
   GET /v1/ha on either shows who leads; only the leader sends pages and publishes presence/...
   HA lines below: who leads, the kill -9 of the leader, the TAKEOVER and how long it took

EOF


# STATE and FLEET lines from presenced's retained output. While the fleet connects, the STATE
# lines of devices coming online are counted, not printed: one START line sums them up.
expected=$(awk '/^  devices:/ { print $2; exit }' "$scenario")
view_states() {
  local line topic dev st why start=$SECONDS startup=1 joined=0 last_fleet=0
  declare -A shown_state  # a restatement (reconnect, HA takeover) of what was shown is not news
  while IFS= read -r line; do
    topic=${line%% *}
    if [ "$topic" = presence/fleet ]; then
      local total=0 online=0 counts=""
      [[ $line =~ \"devices\":([0-9]+) ]] && total=${BASH_REMATCH[1]}
      [[ $line =~ \"online\":([0-9]+) ]] && online=${BASH_REMATCH[1]}
      [[ $line =~ \"counts\":(\{[^\}]*\}) ]] && counts=${BASH_REMATCH[1]}
      # Start-up is over when 90 % of the scenario's devices are online (a few are stuck or
      # slow on purpose), or after 45 s.
      if [ "$startup" = 1 ] && { [ "$online" -ge $((${expected:-1} * 9 / 10)) ] ||
                                 [ $((SECONDS - start)) -ge 45 ]; }; then
        startup=0
        printf '%s START %d devices online of %d known, %d s after start (%d STATE lines of devices coming online not shown)\n' \
          "$(now)" "$online" "$total" $((SECONDS - start)) "$joined"
      fi
      if [ "$startup" = 0 ] && [ $((SECONDS - last_fleet)) -ge 30 ]; then
        last_fleet=$SECONDS
        printf '%s FLEET %s\n' "$(now)" "${counts//\"/}"
      fi
      continue
    fi
    [[ $line =~ \"device\":\"([^\"]*)\" ]] || continue
    dev=${BASH_REMATCH[1]}
    [[ $dev == presence-demo-viewer* ]] && continue  # this script's own subscribers
    st=""; why=""
    [[ $line =~ \"state\":\"([^\"]*)\" ]] && st=${BASH_REMATCH[1]}
    [[ $line =~ \"reason\":\"([^\"]*)\" ]] && why=${BASH_REMATCH[1]}
    if [ "$startup" = 1 ] && { [ "$st" = online ] || [ "$why" = resync ]; }; then
      joined=$((joined + 1))
      shown_state[$dev]="$st $why"
      continue
    fi
    [ "${shown_state[$dev]:-}" = "$st $why" ] && continue
    shown_state[$dev]="$st $why"
    case "$why" in
      resync) why="resync (state carried over from presenced's snapshot at its start, not a new event)" ;;
    esac
    printf '%s STATE %-12s %-9s %s\n' "$(now)" "$dev" "$st" "$why"
  done
}

mkfifo "$work/states.fifo" "$work/alerts.fifo" "$work/alert-fields.fifo"
# One subscriber (one client id, so it is one entry in presenced's device list).
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i presence-demo-viewer -v \
  -t 'presence/devices/#' -t presence/fleet >"$work/states.fifo" 2>/dev/null &
pids+=($!)
view_states <"$work/states.fifo" &
pids+=($!)
tail -n +1 -F "$work/alerts.jsonl" >"$work/alerts.fifo" 2>/dev/null &
tail_pid=$!
pids+=($!)
jq --unbuffered -r "$alert_fields" <"$work/alerts.fifo" >"$work/alert-fields.fifo" 2>>"$work/viewer.log" &
pids+=($!)
view_alerts <"$work/alert-fields.fifo" &
alerts_view=$!
pids+=($!)

# The story's chapters, each printed as it starts: the comment above each `- at:` entry of the
# scenario (config/compose/sim-demo.yaml).
chapters() {
  awk '
    /^timeline:/ { on = 1; next }
    on && /^  # / { sub(/^  # /, ""); text = text (text == "" ? "" : " ") $0; next }
    on && /^  - at: / {
      t = $3; s = 0
      if (t ~ /m$/) s = substr(t, 1, length(t) - 1) * 60; else if (t ~ /s$/) s = substr(t, 1, length(t) - 1) + 0
      if (text == "") text = "the story ends"
      printf "%d\t%d:%02d %s\n", s, s / 60, s % 60, text
      text = ""
    }' "$scenario"
}
print_chapters() {
  local s text t0=$SECONDS
  while IFS=$'\t' read -r s text; do
    [ "$duration" != 0 ] && [ "$s" -gt "$duration" ] && break
    while [ $((SECONDS - t0)) -lt "$s" ]; do pause 0.2; done
    printf '%s CHAPTER %s\n' "$(now)" "$text"
  done < <(chapters)
}

sim_args=(--broker "127.0.0.1:$MQTT_PORT" --scenario "$scenario" --out "$work/truth.jsonl"
          --progress 0)
[ "$duration" != 0 ] && sim_args+=(--duration "${duration}s")
echo "$(now) CHAPTER 0:00 200 simulated devices connect ($( [ "$duration" != 0 ] && echo "stopping after $duration s" || echo "the story takes 10 minutes"); Ctrl-C stops)"
"$build/presence/tools/sim/presence-sim" "${sim_args[@]}" >"$work/sim.log" 2>&1 &
sim=$!
pids+=($sim)
print_chapters &
pids+=($!)

# --ha: the leader is killed (-9) a third of the way in (3:00 of the full story), the standby
# takes over (printed with the time it took), and the killed one is started again 40 s later:
# long enough for the pair to page "peer not running" (ha.peer_down_after 30s) and resolve it.
if [ "$ha" = 1 ]; then
  echo "$(now) HA $leader leads (sends the pages, publishes the retained output); the other follows"
  kill_at=180
  [ "$duration" != 0 ] && kill_at=$((duration / 3 > 15 ? duration / 3 : 15))
fi
ha_step=0  # 0: before the kill, 1: waiting for the takeover, 2: waiting to restart, 3: done
ha_tick() {
  local other keep=() p
  case $ha_step in
    0) [ $((SECONDS - started)) -ge "$kill_at" ] || return 0
       leader=$(ha_leader)
       [ -n "$leader" ] || return 0
       echo "$(now) HA kill -9 $leader (the leader, pid ${ha_pid[$leader]}); the standby takes over when its lease runs out"
       kill -KILL "${ha_pid[$leader]}" 2>/dev/null || true
       wait "${ha_pid[$leader]}" 2>/dev/null || true
       for p in "${pids[@]}"; do [ "$p" != "${ha_pid[$leader]}" ] && keep+=("$p"); done
       pids=("${keep[@]}")  # no stale pid left for cleanup to signal
       killed=$leader
       killed_ns=$(date +%s%N)
       ha_step=1 ;;
    1) other=presenced-a
       [ "$killed" = presenced-a ] && other=presenced-b
       [ "$(ha_role "$other")" = leader ] || return 0
       local ms=$((($(date +%s%N) - killed_ns) / 1000000))
       printf '%s HA TAKEOVER %s leads now, %d.%d s after the leader was killed (it restates the retained output and sends what the dead leader had not)\n' \
         "$(now)" "$other" $((ms / 1000)) $((ms % 1000 / 100))
       restart_at=$((SECONDS + 40))
       ha_step=2 ;;
    2) [ "$SECONDS" -ge "$restart_at" ] || return 0
       echo "$(now) HA starting $killed again: it joins as the standby"
       ha_start "$killed"
       ha_step=3 ;;
  esac
  true
}

# Until the story (or --duration) ends. The simulator stops itself at either; should it not,
# the demo stops it 10 s later.
started=$SECONDS
while kill -0 "$sim" 2>/dev/null; do
  if [ "$duration" != 0 ] && [ $((SECONDS - started)) -ge $((duration + 10)) ]; then
    echo "$(now) demo: the simulator did not stop at --duration; stopping it" >&2
    break
  fi
  [ "$ha" = 1 ] && ha_tick
  pause 1
done
wait "$sim" 2>/dev/null || true
pause 1  # the last receipts reach the ALERT view
# End of input for the ALERT view: it prints what it still holds, then exits (bounded).
kill "$tail_pid" 2>/dev/null || true
for _ in $(seq 1 20); do kill -0 "$alerts_view" 2>/dev/null || break; pause 0.1; done
echo "== the simulated story ended$( [ "$duration" != 0 ] && echo " (--duration $duration)"); final fleet:"
final=$(timeout 5 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i presence-demo-viewer-final \
  -t presence/fleet -C 1 -W 3 2>/dev/null || true)
[[ $final =~ \"counts\":(\{[^\}]*\}) ]] && final=${BASH_REMATCH[1]}
echo "$(now) FLEET ${final//\"/}"
# The simulator disconnects its devices as it stops: devices read suspect from then on. Said so
# that an on-call engineer does not read the last FLEET line as an incident.
echo "   (the simulator has stopped and disconnected its devices: suspect devices from that moment"
echo "    are the end of the demo, not an incident; pages still pending at the stop are not sent)"
PRESENCE_URL=$url PRESENCE_TOKEN=$PRESENCED_HTTP_TOKEN "$here/scripts/presencectl" firing 2>/dev/null || true
