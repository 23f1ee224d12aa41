#include "presence/core/config.h"

#include <sstream>

namespace presence::core {

namespace {

std::string number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

}  // namespace

std::vector<ConfigProblem> config_problems(const Config& c, std::string_view key_prefix) {
  std::vector<ConfigProblem> out;
  const std::string p(key_prefix);
  auto problem = [&](bool ok, std::string key, std::string reason, std::string other = {}) {
    if (!ok) out.push_back({std::move(key), std::move(reason), std::move(other)});
  };
  auto positive = [&](Duration d, const char* key) {
    problem(d.count() > 0, key, "must be greater than 0");
  };
  // The timer wheel keeps 32-bit milliseconds per timeout.
  constexpr std::int64_t kMaxTimeoutMs = 0xFFFFFFFFLL;

  positive(c.offline_grace, "offline_grace");
  positive(c.online_stable_for, "online_stable_for");
  // A timeout shorter than the device's own interval would declare every device dead between two
  // heartbeats.
  problem(c.heartbeat_timeout_factor >= 1.0, "heartbeat_timeout_factor",
          "must be at least 1, got " + number(c.heartbeat_timeout_factor));
  positive(c.heartbeat_timeout_floor, "heartbeat_timeout_floor");
  positive(c.heartbeat_timeout_ceiling, "heartbeat_timeout_ceiling");
  problem(c.heartbeat_timeout_floor <= c.heartbeat_timeout_ceiling, "heartbeat_timeout_ceiling",
          "must be at least " + p + "heartbeat_timeout_floor (" +
              format_duration(c.heartbeat_timeout_floor) + ")",
          "heartbeat_timeout_floor");
  problem(c.heartbeat_timeout_ceiling.count() <= kMaxTimeoutMs, "heartbeat_timeout_ceiling",
          "must be < 49 days");
  positive(c.heartbeat_default_interval, "heartbeat_default_interval");
  problem(c.heartbeat_min_samples >= 1, "heartbeat_min_samples", "must be at least 1");
  problem(c.flap_history >= 2 && c.flap_history <= 32, "flap_history",
          "must be between 2 and 32 (one 32-bit history word per device), got " +
              std::to_string(c.flap_history));
  positive(c.flap_window, "flap_window");
  problem(c.flap_high > 0.0 && c.flap_high <= 1.0, "flap_high",
          "must be in (0, 1], got " + number(c.flap_high));
  problem(c.flap_low >= 0.0 && c.flap_low < 1.0, "flap_low",
          "must be in [0, 1), got " + number(c.flap_low));
  // Hysteresis: equal thresholds would let a device flip in and out of flapping on every event.
  problem(c.flap_low < c.flap_high, "flap_low",
          "must be less than " + p + "flap_high (" + number(c.flap_high) + ")", "flap_high");
  positive(c.restart_grace_min, "restart_grace_min");
  positive(c.restart_grace_settle, "restart_grace_settle");
  problem(c.restart_grace_min <= c.restart_grace_max, "restart_grace_max",
          "must be at least " + p + "restart_grace_min (" + format_duration(c.restart_grace_min) +
              ")",
          "restart_grace_min");
  // Beyond a minute it is not a reordering between two connections to one broker any more.
  problem(c.reorder_window.count() >= 0 && c.reorder_window <= std::chrono::minutes(1),
          "reorder_window", "must be between 0 (off) and 1m");
  problem(c.max_label_keys >= 1 && c.max_label_keys <= 4096, "max_label_keys",
          "must be between 1 and 4096, got " + std::to_string(c.max_label_keys));
  problem(c.max_label_values >= 1 && c.max_label_values <= 10000000, "max_label_values",
          "must be between 1 and 10000000, got " + std::to_string(c.max_label_values));
  // Expiry (issue 19 item 9). 0 = never; a window shorter than offline_grace would forget a
  // one-off id before it could even be judged offline, which no one means.
  problem(c.forget_unconfirmed_after.count() >= 0, "forget_unconfirmed_after",
          "must not be negative");
  problem(c.forget_after.count() >= 0, "forget_after", "must not be negative");
  problem(c.forget_unconfirmed_after.count() <= 0 || c.forget_unconfirmed_after >= c.offline_grace,
          "forget_unconfirmed_after",
          "must be 0 (never) or at least " + p + "offline_grace (" +
              format_duration(c.offline_grace) + ")",
          "offline_grace");
  problem(c.forget_after.count() <= 0 || c.forget_after >= c.forget_unconfirmed_after,
          "forget_after",
          "must be 0 (never) or at least " + p + "forget_unconfirmed_after (" +
              format_duration(c.forget_unconfirmed_after) + ")",
          "forget_unconfirmed_after");
  problem(c.forget_after.count() <= 3650LL * 24 * 3600 * 1000, "forget_after",
          "must be at most 3650d");

  problem(c.device_classes.size() <= kMaxDeviceClasses, "device_classes", "at most 255 classes");
  for (std::size_t i = 0; i < c.device_classes.size(); ++i) {
    const DeviceClass& dc = c.device_classes[i];
    const std::string at = "device_classes[" + std::to_string(i) + "].";
    problem(!dc.name.empty(), at + "name", "is required");
    bool twice = false;
    for (std::size_t j = 0; j < i; ++j) twice = twice || c.device_classes[j].name == dc.name;
    problem(!twice || dc.name.empty(), at + "name", "class '" + dc.name + "' is defined twice");
    problem(dc.heartbeat_timeout_floor.count() >= 0, at + "heartbeat_timeout_floor",
            "must not be negative");
    problem(dc.heartbeat_timeout_ceiling.count() >= 0, at + "heartbeat_timeout_ceiling",
            "must not be negative");
    problem(dc.offline_grace.count() >= 0, at + "offline_grace", "must not be negative");
    // The class's values where it sets them, the Config's elsewhere (class_config).
    const Config eff = class_config(c, i + 1);
    // A class that sets neither bound inherits the Config's, whose problems are said above.
    const bool own_bounds =
        dc.heartbeat_timeout_floor.count() > 0 || dc.heartbeat_timeout_ceiling.count() > 0;
    problem(!own_bounds || eff.heartbeat_timeout_floor <= eff.heartbeat_timeout_ceiling,
            at + "heartbeat_timeout_ceiling",
            "must be at least the class's heartbeat_timeout_floor (" +
                format_duration(eff.heartbeat_timeout_floor) + ")");
    problem(dc.heartbeat_timeout_ceiling.count() <= kMaxTimeoutMs, at + "heartbeat_timeout_ceiling",
            "must be < 49 days (device class '" + dc.name + "')");
  }
  return out;
}

std::string config_error(const Config& c) {
  const auto problems = config_problems(c);
  if (problems.empty()) return {};
  return problems.front().key + ": " + problems.front().reason;
}

Config class_config(const Config& config, std::size_t cls) {
  Config out = config;
  out.device_classes.clear();
  if (cls == 0 || cls > config.device_classes.size()) return out;
  const DeviceClass& dc = config.device_classes[cls - 1];
  if (dc.heartbeat_timeout_floor.count() > 0) out.heartbeat_timeout_floor = dc.heartbeat_timeout_floor;
  if (dc.heartbeat_timeout_ceiling.count() > 0)
    out.heartbeat_timeout_ceiling = dc.heartbeat_timeout_ceiling;
  if (dc.offline_grace.count() > 0) out.offline_grace = dc.offline_grace;
  return out;
}

}  // namespace presence::core
