#!/usr/bin/env bash
# scripts/demo.sh's ALERT view (issue 17): one line per page, at the time the first sink got it,
# with every sink that got it on the same line; not one line per sink with two timestamps. Fed
# the receiver's record of a real demo run (fixtures/demo-alerts.jsonl: a device page, its
# resolve and a fleet incident page, each to PagerDuty, Slack and the webhook).
#   demo_alert_view_test.sh REPO BUILD
set -euo pipefail
repo=$1 build=$2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
got=$(TZ=UTC PRESENCE_BUILD_DIR="$build" bash "$repo/scripts/demo.sh" \
        --alert-view "$here/fixtures/demo-alerts.jsonl")
if ! diff <(printf '%s\n' "$got") "$here/fixtures/demo-alerts.expected"; then
  echo "FAIL: the ALERT view differs from fixtures/demo-alerts.expected (above)"
  exit 1
fi
echo "demo ALERT view: $(grep -c ' ALERT ' <<<"$got") lines for 3 pages x 3 sinks"
