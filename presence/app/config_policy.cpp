// alerts.policy and alerts.routes -> core::PolicyConfig / core::FleetConfig. In the config
// library (not alerting.cpp) because the loader checks what the mapping gives against the core's
// own rules (config_check.cpp, issue 12: one config truth).
#include <algorithm>

#include "presence/app/config.h"
#include "presence/core/words.h"

namespace presence::app {

std::string route_name(std::size_t i) { return "route" + std::to_string(i); }

core::PolicyConfig policy_config(const Config& c) {
  core::PolicyConfig p;
  const auto& a = c.alerts.policy;
  p.alert_after = a.alert_after;
  p.group_wait = a.group_wait;
  p.group_interval = a.group_interval;
  p.blind_alert_after = a.blind_alert_after;
  p.details_max_devices = a.details_max_devices;
  p.parent_label = a.parent_label;
  p.parent_return_grace = a.parent_return_grace;
  for (std::size_t i = 0; i < c.alerts.routes.size(); ++i) {
    const auto& r = c.alerts.routes[i];
    core::AlertRule rule;
    for (const auto& [k, v] : r.match) rule.match.emplace_back(k, v);
    rule.severity = core::severity_from_word(r.severity).value_or(core::Severity::Error);
    rule.route = route_name(i);
    p.rules.push_back(std::move(rule));
  }
  return p;
}

core::FleetConfig fleet_config(const Config& c) {
  core::FleetConfig f;
  const auto& a = c.alerts.policy;
  f.incident_window = a.incident_window;
  // window_resolution must stay within the window (tests use windows of a few seconds).
  f.window_resolution = std::min(f.window_resolution, f.incident_window);
  if (f.storm_baseline_tau < f.incident_window) f.storm_baseline_tau = f.incident_window;
  f.incident_stable_for = a.incident_stable_for;
  // A narrow incident may still widen to the fleet until its page is due (group_wait).
  f.incident_merge_within = a.group_wait;
  f.straggler_grace = a.straggler_grace;
  f.defaults.incident_open_floor = a.incident_open_floor;
  f.defaults.incident_open_fraction = a.incident_open_fraction;
  // Hysteresis below the open fraction (the core's default ratio 0.05 / 0.10).
  f.defaults.incident_close_fraction =
      std::min(f.defaults.incident_close_fraction, a.incident_open_fraction / 2);
  f.defaults.incident_recovered_share = a.incident_recovered_share;
  f.defaults.storm_open_floor = a.storm_open_floor;
  f.defaults.storm_open_fraction = a.storm_open_fraction;
  f.defaults.storm_open_factor = a.storm_open_factor;
  f.defaults.storm_flapping_floor = a.storm_flapping_floor;
  f.defaults.storm_flapping_fraction = a.storm_flapping_fraction;
  return f;
}

}  // namespace presence::app
