#!/usr/bin/env bash
# Installs the Debian 12 packages presenced needs, only those that are missing.
# Sourced by scripts/test.sh and scripts/demo.sh; run alone it installs everything.
set -euo pipefail

PRESENCE_PACKAGES=(
  build-essential cmake pkg-config
  libpaho-mqttpp-dev libpaho-mqtt-dev
  mosquitto mosquitto-dev mosquitto-clients
  libssl-dev libyaml-cpp-dev doctest-dev libcurl4-openssl-dev
  libcpp-httplib-dev nlohmann-json3-dev
  etcd-server
  # Sparkplug B payloads (issue 15, docs/sparkplug.md): protoc generates the lite C++ code.
  libprotobuf-dev protobuf-compiler
  docker-compose
  # scripts/demo.sh's ALERT view and scripts/presencectl's readable output.
  jq
  # The dashboard's browser test: Debian's Chromium driven by playwright-core (npm, pinned in
  # test/integration/dashboard/package-lock.json). nodejs brings npm with it on these machines.
  chromium nodejs
  # Fuzzing (test/fuzz, docs/fuzzing.md): clang and its libFuzzer/sanitizer runtimes. gcc's own
  # ASan/UBSan/TSan runtimes come with build-essential.
  clang libclang-rt-14-dev
  # Issue 18: the Alertmanager sink is tested against a real Alertmanager.
  prometheus-alertmanager
)

presence_install_deps() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "deps: installing missing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  presence_install_deps "${PRESENCE_PACKAGES[@]}"
fi
