#include "presence/core/config.h"

namespace presence::core {

std::string config_error(const Config& c) {
  const auto positive = [](Duration d) { return d.count() > 0; };
  if (!positive(c.offline_grace)) return "offline_grace must be > 0";
  if (c.online_stable_for.count() < 0) return "online_stable_for must be >= 0";
  if (!(c.heartbeat_timeout_factor >= 1.0)) return "heartbeat_timeout_factor must be >= 1";
  if (!positive(c.heartbeat_timeout_floor)) return "heartbeat_timeout_floor must be > 0";
  if (c.heartbeat_timeout_ceiling < c.heartbeat_timeout_floor) {
    return "heartbeat_timeout_ceiling must be >= heartbeat_timeout_floor";
  }
  if (c.heartbeat_timeout_ceiling.count() > 0xFFFFFFFFLL) {
    return "heartbeat_timeout_ceiling must be < 49 days";
  }
  if (!positive(c.heartbeat_default_interval)) return "heartbeat_default_interval must be > 0";
  if (c.flap_history < 2 || c.flap_history > 32) return "flap_history must be in [2, 32]";
  if (!positive(c.flap_window)) return "flap_window must be > 0";
  if (!(c.flap_low >= 0.0 && c.flap_low < c.flap_high && c.flap_high <= 1.0)) {
    return "flap_low and flap_high must satisfy 0 <= flap_low < flap_high <= 1";
  }
  if (c.restart_grace_min.count() < 0) return "restart_grace_min must be >= 0";
  if (c.restart_grace_max < c.restart_grace_min) {
    return "restart_grace_max must be >= restart_grace_min";
  }
  if (c.restart_grace_settle.count() < 0) return "restart_grace_settle must be >= 0";
  if (c.max_label_keys < 1) return "max_label_keys must be >= 1";
  if (c.max_label_values < 1) return "max_label_values must be >= 1";
  if (c.forget_unconfirmed_after.count() < 0) return "forget_unconfirmed_after must be >= 0";
  if (c.forget_after.count() < 0) return "forget_after must be >= 0";
  if (c.device_classes.size() > kMaxDeviceClasses) return "at most 255 device classes";
  for (std::size_t i = 0; i < c.device_classes.size(); ++i) {
    const DeviceClass& dc = c.device_classes[i];
    const std::string where = "device class '" + dc.name + "': ";
    if (dc.name.empty()) return "device class " + std::to_string(i) + ": name must not be empty";
    for (std::size_t j = 0; j < i; ++j)
      if (c.device_classes[j].name == dc.name) return where + "defined twice";
    if (dc.heartbeat_timeout_floor.count() < 0 || dc.heartbeat_timeout_ceiling.count() < 0 ||
        dc.offline_grace.count() < 0)
      return where + "durations must be >= 0";
    const Config eff = class_config(c, i + 1);
    if (eff.heartbeat_timeout_ceiling < eff.heartbeat_timeout_floor)
      return where + "heartbeat_timeout_ceiling must be >= heartbeat_timeout_floor";
    if (eff.heartbeat_timeout_ceiling.count() > 0xFFFFFFFFLL)
      return where + "heartbeat_timeout_ceiling must be < 49 days";
  }
  return {};
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
