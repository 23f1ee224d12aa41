// The alerting side of /metrics (issue 12 step 2: the text moved out of presence/app/alerting):
// a plain snapshot of numbers, filled by app::Alerting::metrics() from any thread, and its
// Prometheus text next to the other families of /metrics (health.h, api.h).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "presence/alert/dispatcher.h"  // DispatcherStats (plain structs only)
#include "presence/alert/watchdog.h"    // WatchdogStats
#include "presence/store/snapshot.h"    // SnapshotStats

namespace presence::api {

struct AlertMetrics {
  std::uint64_t triggers = 0, resolves = 0, notices = 0;  // intents handed to the dispatcher
  std::optional<alert::DispatcherStats> dispatcher;       // none: no sink enabled
  std::uint64_t incidents_open = 0, devices_held = 0, alerts_firing = 0, alerts_pending = 0;
  // triggers, resolves, device_alerts_cancelled, device_alerts_held, alerts_silenced,
  // devices_grouped (core::PolicyCounters)
  std::array<std::uint64_t, 8> policy{};
  std::uint64_t devices_unreachable = 0;  // issue 15: held behind a parent that is down
  store::SnapshotStats snapshot;
  bool persistence_failing = false;
  // The last snapshot's longest engine-thread slice, its slices' sum and count; the longest
  // slice since start (core/snapshot_slicer.h).
  std::int64_t snapshot_pause_us = 0, snapshot_copy_us = 0, snapshot_pause_max_us = 0;
  std::uint64_t snapshot_slices = 0;
  std::int64_t snapshot_restore_us = 0;    // start-up: read, decode and restore the snapshot
  std::optional<alert::WatchdogStats> watchdog;
};

std::string render_prometheus(const AlertMetrics& metrics);

}  // namespace presence::api
