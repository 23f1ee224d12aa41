#!/usr/bin/env bash
# Demo. Until the service exists (presenced + Mosquitto + simulated fleet), this replays a small
# recorded story through the core and prints its decisions live: a broker restart nobody is paged
# for, a flapping kiosk (one flap, not a page per drop), a short blip, and two real failures.
#   bash scripts/demo.sh                   paced (about 30 s)
#   PRESENCE_DEMO_SPEED=0 bash scripts/demo.sh   all at once
#   bash scripts/demo.sh --set offline_grace=2m  extra presence-replay options: what if?
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/scripts/deps.sh"
presence_install_deps "${PRESENCE_PACKAGES[@]}"

build="${PRESENCE_BUILD_DIR:-$here/build}"
jobs="${PRESENCE_JOBS:-$(nproc)}"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWITH_WERROR=ON >/dev/null
cmake --build "$build" -j "$jobs" --target presence-replay >/dev/null

story="$here/config/replay/demo.replay"
echo "== presenced demo: replaying $story"
echo "   (time in simulated seconds; '.' lines are input events, heartbeats hidden)"
echo
exec "$build/presence/tools/presence-replay" --show-events --final \
  --speed "${PRESENCE_DEMO_SPEED:-45}" "$@" "$story"
