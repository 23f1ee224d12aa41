#!/usr/bin/env bash
# Setup for the dashboard browser test: Debian's chromium (only if missing) and playwright-core
# from the committed package-lock.json (no browser download: playwright-core has none).
# Never fails: when something cannot be installed, the test itself reports SKIP (exit 77).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "dashboard test setup: installing chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
      echo "dashboard test setup: could not install chromium"
  else
    echo "dashboard test setup: /usr/bin/chromium missing and not root: apt-get install chromium"
  fi
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  if command -v npm >/dev/null; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) ||
      echo "dashboard test setup: npm ci failed"
  else
    echo "dashboard test setup: npm missing (apt-get install npm)"
  fi
fi
exit 0
