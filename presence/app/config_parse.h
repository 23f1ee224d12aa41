// Internal to the config room (presence/app/config*.cpp; not for other rooms, which use
// config.h): the one schema description (describe()), the small parsers and formatters every
// concern shares, and the Diagnostics the loader and the checks report into (issue 12: config.cpp
// split by concern).
//
//   config_parse.cpp   scalars: durations, sizes, numbers, ISO 8601 times, ${VAR} substitution
//   config_load.cpp    YAML text -> Config (Reader), text shape, token_file, load_config_*
//   config_check.cpp   ranges and relations between keys; asks core::config_problems and
//                      ingest::compile_ingest for what they own (one config truth)
//   config_reload.cpp  flatten, diff, apply_reloadable, reload_config, --check-config output
//   config_ingest.cpp  the file's topics and device classes in the ingest compiler's terms
#pragma once

#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "presence/app/config.h"

namespace presence::app::internal {

// ---------------------------------------------------------------------------------------------
// Small helpers

std::string quoted(std::string_view s);  // 'text'
std::size_t edit_distance(std::string_view a, std::string_view b);
std::optional<double> parse_double(std::string_view s);
std::string format_double(double v);
std::string lower(std::string_view s);
// One parser for every time a user gives us (presence/common/iso8601.h): a silence that loads from
// the file is accepted by POST /v1/silences and the other way round (issue 12). The file keeps
// whole seconds: a fraction is truncated.
std::optional<WallTime> parse_iso8601(std::string_view s);
std::string format_iso8601(WallTime t);

template <class Int>
std::optional<Int> parse_int(std::string_view s) {
  Int v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Enums: one table per enum, used for parsing, formatting and the error text.
template <class E>
struct EnumNames;
template <>
struct EnumNames<MqttProtocol> {
  static constexpr std::pair<MqttProtocol, const char*> values[] = {{MqttProtocol::v3_1_1, "3.1.1"},
                                                                    {MqttProtocol::v5, "5"}};
};
template <>
struct EnumNames<LogLevel> {
  static constexpr const auto& values = common::kLogLevelWords;
};
template <>
struct EnumNames<Mode> {
  static constexpr std::pair<Mode, const char*> values[] = {{Mode::presence, "presence"},
                                                            {Mode::naive, "naive"}};
};

template <class E>
const char* enum_name(E e) {
  for (const auto& [v, n] : EnumNames<E>::values)
    if (v == e) return n;
  return "?";
}

template <class E>
std::string enum_choices() {
  std::string out;
  for (const auto& [v, n] : EnumNames<E>::values) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Schema: the one description of every key. V is a visitor with section(), field() and list().

template <class V>
void describe_route(V& v, AlertRouteConfig& r) {
  v.field("match", r.match);
  v.field("severity", r.severity);
  v.field("pagerduty_routing_key", r.pagerduty_routing_key, true);
  v.field("slack_webhook_url", r.slack_webhook_url, true);
}

template <class V>
void describe_silence(V& v, SilenceConfig& s) {
  v.field("match", s.match);
  v.field("starts", s.starts);
  v.field("ends", s.ends);
  v.field("comment", s.comment);
}

template <class V>
void describe_source(V& v, SourceConfig& s) {
  v.field("name", s.name);
  v.field("preset", s.preset);
  v.field("status", s.status);
  v.field("heartbeat", s.heartbeat);
  v.field("ignore", s.ignore);
  v.field("state_path", s.state_path);
  v.field("online", s.online);
  v.field("offline", s.offline);
  v.field("graceful", s.graceful);
  v.field("sleeping", s.sleeping);
  v.field("other", s.other);
  v.field("labels", s.labels);
  v.field("label_paths", s.label_paths);
  v.field("device_class", s.device_class);
}

template <class V>
void describe_device_class(V& v, DeviceClassConfig& d) {
  v.field("name", d.name);
  v.field("match", d.match);
  v.field("heartbeat_timeout_floor", d.heartbeat_timeout_floor);
  v.field("heartbeat_timeout_ceiling", d.heartbeat_timeout_ceiling);
  v.field("offline_grace", d.offline_grace);
}

template <class V>
void describe(V& v, Config& c) {
  v.section("mqtt", [&] {
    auto& m = c.mqtt;
    v.field("uri", m.uri);
    v.field("client_id", m.client_id);
    v.field("protocol", m.protocol);
    v.field("clean_session", m.clean_session);
    v.field("keepalive", m.keepalive);
    v.field("username", m.username);
    v.field("password", m.password, true);
    v.section("tls", [&] {
      v.field("ca_file", m.tls.ca_file);
      v.field("verify", m.tls.verify);
      v.field("cert_file", m.tls.cert_file);
      v.field("key_file", m.tls.key_file);
    });
    v.section("reconnect", [&] {
      v.field("min_backoff", m.reconnect.min_backoff);
      v.field("max_backoff", m.reconnect.max_backoff);
      v.field("jitter", m.reconnect.jitter);
    });
    v.field("qos", m.qos);
    v.field("bulk_heartbeats", m.bulk_heartbeats);
  });
  v.section("topics", [&] {
    auto& t = c.topics;
    v.field("status", t.status);
    v.field("heartbeat", t.heartbeat);
    v.field("emqx_connected", t.emqx_connected);
    v.field("emqx_disconnected", t.emqx_disconnected);
    v.field("broker_ext", t.broker_ext);
    v.field("emqx_uptime", t.emqx_uptime);
    v.field("mosquitto_uptime", t.mosquitto_uptime);
    v.field("ignore_ids", t.ignore_ids);
  });
  v.list("sources", c.sources, [&](SourceConfig& s) { describe_source(v, s); });
  v.list("device_classes", c.device_classes,
         [&](DeviceClassConfig& d) { describe_device_class(v, d); });
  v.section("sparkplug", [&] {
    v.field("enabled", c.sparkplug.enabled);
    v.field("primary_host", c.sparkplug.primary_host);
    v.field("rebirth", c.sparkplug.rebirth);
    v.field("rebirth_interval", c.sparkplug.rebirth_interval);
  });
  v.section("output", [&] {
    auto& o = c.output;
    v.field("device_prefix", o.device_prefix);
    v.field("fleet_topic", o.fleet_topic);
    v.field("retain", o.retain);
    v.field("qos", o.qos);
    v.field("publish_rate", o.publish_rate);
    v.field("coalesce_interval", o.coalesce_interval);
  });
  v.section("presence", [&] {
    auto& p = c.presence;
    v.field("offline_grace", p.offline_grace);
    v.field("online_stable_for", p.online_stable_for);
    v.field("heartbeat_timeout_factor", p.heartbeat_timeout_factor);
    v.field("heartbeat_timeout_floor", p.heartbeat_timeout_floor);
    v.field("heartbeat_timeout_ceiling", p.heartbeat_timeout_ceiling);
    v.field("heartbeat_default_interval", p.heartbeat_default_interval);
    v.field("heartbeat_min_samples", p.heartbeat_min_samples);
    v.field("flap_history", p.flap_history);
    v.field("flap_window", p.flap_window);
    v.field("flap_high", p.flap_high);
    v.field("flap_low", p.flap_low);
    v.field("restart_grace_min", p.restart_grace_min);
    v.field("restart_grace_max", p.restart_grace_max);
    v.field("restart_grace_settle", p.restart_grace_settle);
    v.field("reorder_window", p.reorder_window);
    v.field("max_label_keys", p.max_label_keys);
    v.field("max_label_values", p.max_label_values);
    v.field("max_devices", p.max_devices);
    v.field("forget_unconfirmed_after", p.forget_unconfirmed_after);
    v.field("forget_after", p.forget_after);
  });
  v.section("http", [&] {
    v.field("listen", c.http.listen);
    v.field("token", c.http.token, true);
    v.field("token_file", c.http.token_file);
    v.field("max_connections", c.http.max_connections);
    v.field("max_body_bytes", c.http.max_body_bytes);
    v.field("idle_timeout", c.http.idle_timeout);
    v.field("health_listen", c.http.health_listen);
  });
  v.section("store", [&] {
    v.field("dir", c.store.dir);
    v.field("snapshot_interval", c.store.snapshot_interval);
  });
  v.section("alerts", [&] {
    auto& a = c.alerts;
    v.field("enabled", a.enabled);
    v.section("pagerduty", [&] {
      v.field("enabled", a.pagerduty.enabled);
      v.field("url", a.pagerduty.url);
      v.field("routing_key", a.pagerduty.routing_key, true);
      v.field("rate_limit_events", a.pagerduty.rate_limit_events);
      v.field("rate_limit_window", a.pagerduty.rate_limit_window);
      v.field("change_events", a.pagerduty.change_events);
      v.field("change_url", a.pagerduty.change_url);
    });
    v.section("slack", [&] {
      v.field("enabled", a.slack.enabled);
      v.field("webhook_url", a.slack.webhook_url, true);
      v.field("max_per_second", a.slack.max_per_second);
    });
    v.section("webhook", [&] {
      v.field("enabled", a.webhook.enabled);
      v.field("url", a.webhook.url);
      v.field("secret", a.webhook.secret, true);
    });
    v.section("alertmanager", [&] {
      v.field("enabled", a.alertmanager.enabled);
      v.field("urls", a.alertmanager.urls);
      v.field("resend_interval", a.alertmanager.resend_interval);
      v.field("notify_for", a.alertmanager.notify_for);
    });
    v.section("teams", [&] {
      v.field("enabled", a.teams.enabled);
      v.field("webhook_url", a.teams.webhook_url, true);
      v.field("max_per_second", a.teams.max_per_second);
    });
    v.field("dashboard_url", a.dashboard_url);
    v.section("watchdog", [&] {
      v.field("url", a.watchdog.url, true);
      v.field("interval", a.watchdog.interval);
    });
    v.section("policy", [&] {
      auto& p = a.policy;
      v.field("alert_after", p.alert_after);
      v.field("group_wait", p.group_wait);
      v.field("group_interval", p.group_interval);
      v.field("blind_alert_after", p.blind_alert_after);
      v.field("incident_window", p.incident_window);
      v.field("incident_open_floor", p.incident_open_floor);
      v.field("incident_open_fraction", p.incident_open_fraction);
      v.field("incident_stable_for", p.incident_stable_for);
      v.field("straggler_grace", p.straggler_grace);
      v.field("incident_recovered_share", p.incident_recovered_share);
      v.field("storm_open_floor", p.storm_open_floor);
      v.field("storm_open_fraction", p.storm_open_fraction);
      v.field("storm_open_factor", p.storm_open_factor);
      v.field("storm_flapping_floor", p.storm_flapping_floor);
      v.field("storm_flapping_fraction", p.storm_flapping_fraction);
      v.field("details_max_devices", p.details_max_devices);
      v.field("parent_label", p.parent_label);
      v.field("parent_return_grace", p.parent_return_grace);
    });
    v.list("routes", a.routes, [&](AlertRouteConfig& r) { describe_route(v, r); });
    v.list("silences", a.silences, [&](SilenceConfig& s) { describe_silence(v, s); });
  });
  v.section("ha", [&] {
    v.field("endpoints", c.ha.endpoints);
    v.field("name", c.ha.name);
    v.field("key_prefix", c.ha.key_prefix);
    v.field("lease_ttl", c.ha.lease_ttl);
    v.field("fail_open_after", c.ha.fail_open_after);
    v.field("peer_down_after", c.ha.peer_down_after);
  });
  v.section("emqx_api", [&] {
    v.field("url", c.emqx_api.url);
    v.field("api_key", c.emqx_api.api_key);
    v.field("api_secret", c.emqx_api.api_secret, true);
    v.field("page_size", c.emqx_api.page_size);
    v.field("timeout", c.emqx_api.timeout);
  });
  v.section("log", [&] {
    v.field("level", c.log.level);
    v.field("rate_limit", c.log.rate_limit);
  });
  v.section("overload", [&] {  // issue 16: when presenced is behind, silence is not judged
    v.field("lag_limit", c.overload.lag_limit);
    v.field("inbox_limit", c.overload.inbox_limit);
    v.field("clear_after", c.overload.clear_after);
    v.field("alert_after", c.overload.alert_after);
  });
  v.field("mode", c.mode);
}

// ---------------------------------------------------------------------------------------------
// Diagnostics: every error found so far, the line of every key read, and the keys that failed
// (a key that already failed is not reported twice by a later check).

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  std::vector<ConfigError> take_errors() { return std::move(errors_); }
  void error(int line, std::string key, std::string reason) {
    errors_.push_back({file_, line, std::move(key), std::move(reason)});
  }
  // Line of a key, or of its closest ancestor present in the file (0 = none).
  int line_for(std::string path) const {
    while (!path.empty()) {
      if (auto it = lines_.find(path); it != lines_.end()) return it->second;
      const auto cut = path.find_last_of(".[");
      if (cut == std::string::npos) break;
      path.resize(cut);
    }
    return 0;
  }
  bool failed(const std::string& path) const { return failed_.count(path) != 0; }
  // A key under prefix failed to read or was reported.
  bool failed_under(const std::string& prefix) const {
    const auto it = failed_.lower_bound(prefix);
    if (it != failed_.end() && it->rfind(prefix, 0) == 0) return true;
    for (const auto& e : errors_)
      if (e.key.rfind(prefix, 0) == 0) return true;
    return false;
  }
  bool present(const std::string& path) const { return lines_.count(path) != 0; }

 protected:
  std::string file_;
  std::vector<ConfigError> errors_;
  std::map<std::string, int> lines_;
  std::set<std::string> failed_;
};

// Ranges and relations between keys, after reading (config_check.cpp).
void check_rules(Diagnostics& diagnostics, const Config& config);

}  // namespace presence::app::internal
