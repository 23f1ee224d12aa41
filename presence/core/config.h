// Core parameters. Names are shared by the YAML key (config/presenced.yaml, section "presence"),
// this struct, the metrics and docs/core.md (STYLE.md habit 10). Defaults and their reasons are in
// docs/core.md; config_problems() below is the one set of rules, which the YAML loader
// (presence/app/config_check.cpp) and presence-replay apply before constructing an Engine.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "presence/core/time.h"

namespace presence::core {

// A device class (issue 14): its own heartbeat clock and offline grace, so a sleepy battery sensor
// is not judged by a mains device's clock. A zero duration keeps the Config value. Which device
// belongs to which class is the adapters' business (ingest: per source or per label); the core
// only keeps a one-byte class per device (Engine::set_device_class).
struct DeviceClass {
  std::string name;
  Duration heartbeat_timeout_floor{0};
  Duration heartbeat_timeout_ceiling{0};
  Duration offline_grace{0};
};
inline constexpr std::size_t kMaxDeviceClasses = 255;  // class 0 = no class (the Config values)

struct Config {
  // A disconnect becomes offline only if the device does not come back within offline_grace.
  Duration offline_grace{std::chrono::seconds(30)};
  // After offline or flapping, online is declared only after this long without a disconnect.
  Duration online_stable_for{std::chrono::seconds(60)};

  // Adaptive heartbeat timeout: timeout = clamp(heartbeat_timeout_factor x observed mean interval,
  // heartbeat_timeout_floor, heartbeat_timeout_ceiling). Until a device has shown
  // heartbeat_min_samples intervals, heartbeat_default_interval stands in for the mean.
  double heartbeat_timeout_factor = 3.0;
  Duration heartbeat_timeout_floor{std::chrono::seconds(15)};
  Duration heartbeat_timeout_ceiling{std::chrono::minutes(30)};
  Duration heartbeat_default_interval{std::chrono::seconds(60)};
  std::uint32_t heartbeat_min_samples = 3;

  // Flap detection (Nagios-style weighted state changes, with a time bound so that rare, spread
  // out disconnects never add up to a flap).
  std::uint32_t flap_history = 21;  // state observations kept per device
  Duration flap_window{std::chrono::minutes(10)};
  double flap_high = 0.5;  // start flapping at >= this weighted share of changes
  double flap_low = 0.25;  // stop flapping at <= this share

  // Grace after presenced regains the broker (its own restart, or a broker restart): nobody is
  // declared offline on silence presenced could not observe. Ends when the returning share has
  // stopped growing for restart_grace_settle, bounded by [restart_grace_min, restart_grace_max].
  Duration restart_grace_min{std::chrono::seconds(30)};
  Duration restart_grace_max{std::chrono::minutes(10)};
  Duration restart_grace_settle{std::chrono::seconds(15)};

  // A heartbeat that came on another connection than the departures (Event::unordered) and
  // arrives within this time after the device's reported departure (a last-will, a broker-ext
  // disconnect) may have been sent before it: it is not taken as the device being back
  // (reordered_heartbeats). Without it, a dead device's last heartbeat overtaken by its will
  // brought it back online, and it was declared offline again only on heartbeat silence (15 s
  // to minutes later: a late page, and a straggler missing from its incident's page). A device
  // that is really back shows it by a birth or a broker-ext connect at once (those are
  // ordered), or by its next heartbeat after the window. 0 = off.
  Duration reorder_window{std::chrono::seconds(2)};

  // Bounds against hostile or broken input (issue 19 items 3 and 9). Labels: distinct label keys
  // and distinct key=value pairs across the fleet since start (each one becomes a fleet segment
  // for good); a label beyond them is refused, counted (labels_refused) and the device keeps the
  // rest. Births whose label keys changed per message took presenced to 3.3 GB before.
  std::uint32_t max_label_keys = 64;
  std::uint32_t max_label_values = 100000;
  // Devices: ids beyond max_devices are refused (counted, devices_refused) until forgotten ones
  // make room; 0 = no cap. The default bounds a junk-id flood at ~200 MB of engine state (about
  // 100 B/device with the id, docs/benchmarks.md) while leaving 2x headroom over the largest
  // fleet we serve (1M devices).
  std::uint32_t max_devices = 2000000;
  // Expiry (issue 19 item 9: 200,000 junk ids were all kept for good). A device that is not up
  // (Offline, or Unknown with no evidence), that no observer keeps (an open page, a fleet incident
  // hold) and that had no evidence and no change for this long is forgotten: removed from the
  // engine, the API, snapshots and the retained output. forget_unconfirmed_after applies to ids
  // that only ever sent one live message (a typo, a scan, a junk flood); forget_after to every
  // other device (decommissioned hardware). 0 = never.
  Duration forget_unconfirmed_after{std::chrono::minutes(10)};
  Duration forget_after{std::chrono::hours(24 * 30)};

  // Class k (1-based) is device_classes[k - 1]; devices start in class 0 (the values above).
  std::vector<DeviceClass> device_classes;
};

// The values that apply to a device of class `cls` (0 or out of range: config itself).
Config class_config(const Config& config, std::size_t cls);

// One problem with a Config (issue 12: one config truth; the YAML loader asks this instead of
// keeping its own copy of the rules). key: the member as named here ("offline_grace",
// "device_classes[2].heartbeat_timeout_ceiling", "device_classes" for the count); other: the key
// a relation also involves ("" = none), so a caller that could not read that one can leave the
// relation unsaid; reason: why, without the key, for a user ("must be greater than 0").
struct ConfigProblem {
  std::string key;
  std::string reason;
  std::string other;
};

// Every problem, in member order. key_prefix is how the caller's user names the scalar keys
// when a reason refers to another one ("presence." gives "must be less than presence.flap_high
// (0.5)"). Ranges: durations > 0 (forget_* and class durations >= 0), heartbeat_timeout_floor <=
// heartbeat_timeout_ceiling < 49 days (32-bit timer wheel), heartbeat_timeout_factor >= 1,
// heartbeat_min_samples >= 1, 2 <= flap_history <= 32, 0 <= flap_low < flap_high <= 1,
// restart_grace_min <= restart_grace_max, 1 <= max_label_keys <= 4096, 1 <= max_label_values <=
// 10^7, forget_unconfirmed_after 0 or >= offline_grace, forget_after 0 or >= that and <= 3650d;
// device classes: unique non-empty names, at most kMaxDeviceClasses, effective floor <= ceiling.
std::vector<ConfigProblem> config_problems(const Config& config, std::string_view key_prefix = {});

// Empty if config is usable, else the first problem as "key: reason".
std::string config_error(const Config& config);

}  // namespace presence::core
