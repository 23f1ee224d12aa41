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
  return {};
}

}  // namespace presence::core
