// YAML -> Config (issue 3). One description of the schema (describe() below) drives reading,
// unknown-key detection, flattening and reload diffs, so a key cannot be readable but missing from
// the diff, or the other way round.
#include "presence/app/config.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <ostream>
#include <limits>
#include <set>
#include <sstream>
#include <yaml-cpp/yaml.h>

#include "presence/common/iso8601.h"
#include "presence/common/wall_time.h"
#include "presence/core/words.h"
#include "presence/ingest/presets.h"
#include "presence/ingest/topic_pattern.h"

namespace presence::app {

namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Small helpers

int line_of(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }

const char* kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a string";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

template <class Int>
std::optional<Int> parse_int(std::string_view s) {
  Int v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  double v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::string format_double(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// One parser for every time a user gives us (presence/common/iso8601.h): a silence that loads from
// this file is accepted by POST /v1/silences and the other way round (issue 12). The file keeps
// whole seconds: a fraction is truncated.
std::optional<WallTime> parse_iso8601(std::string_view s) {
  const auto t = common::parse_iso8601(s);
  if (!t) return std::nullopt;
  return std::chrono::floor<std::chrono::seconds>(*t);
}

std::string format_iso8601(WallTime t) {
  const auto days = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{days};
  const std::chrono::hh_mm_ss hms{t - days};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02ld:%02ld:%02ldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long>(hms.hours().count()), static_cast<long>(hms.minutes().count()),
                static_cast<long>(hms.seconds().count()));
  return buf;
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
// Reading

class Reader {
 public:
  Reader(std::string file, const EnvLookup& env) : file_(std::move(file)), env_(env) {}

  void run(const YAML::Node& root, Config& config) {
    if (root.IsDefined() && !root.IsNull() && !root.IsMap()) {
      error(line_of(root.Mark()), "",
            std::string("expected a map of sections at the top level, got ") + kind_of(root));
      frames_.push_back({YAML::Node(), "", {}, false});
    } else {
      frames_.push_back({root, "", {}, root.IsMap()});
    }
    describe(*this, config);
    check_unknown(frames_.back());
    frames_.pop_back();
  }

  // --- visitor interface ---
  template <class F>
  void section(const char* name, F body) {
    const std::optional<YAML::Node> child = lookup(name);
    const std::string path = join(name);
    bool valid = false;
    if (child && child->IsMap()) {
      valid = true;
    } else if (child && !child->IsNull()) {
      error(line_of(child->Mark()), path, std::string("expected a map, got ") + kind_of(*child));
      failed_.insert(path);
    }
    frames_.push_back({valid ? *child : YAML::Node(), path, {}, valid});
    body();
    check_unknown(frames_.back());
    frames_.pop_back();
  }

  template <class T, class F>
  void list(const char* name, std::vector<T>& out, F item) {
    const std::optional<YAML::Node> node = lookup(name);
    const std::string path = join(name);
    if (!node || node->IsNull()) return;
    if (!node->IsSequence()) {
      error(line_of(node->Mark()), path, std::string("expected a list, got ") + kind_of(*node));
      failed_.insert(path);
      return;
    }
    out.clear();
    for (std::size_t i = 0; i < node->size(); ++i) {
      const YAML::Node element = (*node)[i];
      const std::string epath = path + "[" + std::to_string(i) + "]";
      lines_[epath] = line_of(element.Mark());
      // Always one entry per element, so out[i] and the "[i]" in error paths stay the file's i.
      out.emplace_back();
      if (!element.IsMap()) {
        error(line_of(element.Mark()), epath,
              std::string("expected a map, got ") + kind_of(element));
        failed_.insert(epath);
        continue;
      }
      frames_.push_back({element, epath, {}, true});
      item(out.back());
      check_unknown(frames_.back());
      frames_.pop_back();
    }
  }

  template <class T>
  void field(const char* name, T& out, bool /*secret*/ = false) {
    const std::optional<YAML::Node> node = lookup(name);
    if (!node) return;
    const std::string path = join(name);
    // A null value (`key:` and nothing) has its mark on the next token; report the key's line.
    const int line = node->IsNull() ? lines_[path] : line_of(node->Mark());
    lines_[path] = line;
    auto fail = [&](std::string reason) {
      error(line, path, std::move(reason));
      failed_.insert(path);
    };
    if constexpr (std::is_same_v<T, LabelMatch>) {
      if (node->IsNull()) return;
      if (!node->IsMap()) return fail(std::string("expected a map, got ") + kind_of(*node));
      out.clear();
      for (const auto& kv : *node) {
        const std::string label = kv.first.IsScalar() ? kv.first.Scalar() : "?";
        const std::string lpath = path + "." + label;
        if (!kv.second.IsScalar()) {
          error(line_of(kv.second.Mark()), lpath,
                std::string("expected a string, got ") + kind_of(kv.second));
          failed_.insert(path);
          continue;
        }
        if (auto v = scalar(kv.second, lpath)) out[label] = *v;
      }
      return;
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      if (node->IsNull()) {
        out.clear();
        return;
      }
      if (!node->IsSequence()) return fail(std::string("expected a list, got ") + kind_of(*node));
      out.clear();
      for (std::size_t i = 0; i < node->size(); ++i) {
        const YAML::Node element = (*node)[i];
        const std::string epath = path + "[" + std::to_string(i) + "]";
        lines_[epath] = line_of(element.Mark());
        if (!element.IsScalar()) {
          error(line_of(element.Mark()), epath, std::string("expected a string, got ") + kind_of(element));
          failed_.insert(path);
          continue;
        }
        if (auto v = scalar(element, epath)) out.push_back(*v);
      }
      return;
    } else {
      if (node->IsMap() || node->IsSequence())
        return fail(std::string("expected ") + expected<T>() + ", got " + kind_of(*node));
      if (node->IsNull()) {
        // `username:` with nothing after it reads as "no username"; for anything else an empty
        // value is almost always a mistake, so it is an error rather than a silent default.
        if constexpr (std::is_same_v<T, std::string>) {
          out.clear();
          return;
        } else {
          return fail(std::string("expected ") + expected<T>() + ", got nothing");
        }
      }
      const std::optional<std::string> text = scalar(*node, path);
      if (!text) {
        failed_.insert(path);
        return;
      }
      std::string value = std::move(*text);
      if constexpr (!std::is_same_v<T, std::string>) {
        // A block scalar (`|`) keeps its final newline; it is not part of a number or duration.
        while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
          value.pop_back();
      }
      if (auto reason = convert(value, out)) fail(std::move(*reason));
    }
  }

  // --- results ---
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

 private:
  struct Frame {
    YAML::Node node;
    std::string path;
    std::vector<std::string> known;
    bool valid = false;
  };

  std::string join(const char* name) const {
    const std::string& base = frames_.back().path;
    return base.empty() ? std::string(name) : base + "." + name;
  }

  // First value under `name` in the current map (duplicates are reported by check_unknown).
  std::optional<YAML::Node> lookup(const char* name) {
    Frame& f = frames_.back();
    f.known.emplace_back(name);
    if (!f.valid) return std::nullopt;
    for (const auto& kv : f.node) {
      if (kv.first.IsScalar() && kv.first.Scalar() == name) {
        lines_.emplace(join(name), line_of(kv.first.Mark()));
        return kv.second;
      }
    }
    return std::nullopt;
  }

  void check_unknown(const Frame& f) {
    if (!f.valid) return;
    std::set<std::string> seen;
    for (const auto& kv : f.node) {
      const int line = line_of(kv.first.Mark());
      if (!kv.first.IsScalar()) {
        error(line, f.path, "keys must be plain strings");
        continue;
      }
      const std::string& key = kv.first.Scalar();
      const std::string path = f.path.empty() ? key : f.path + "." + key;
      if (!seen.insert(key).second) {
        error(line, path, "duplicate key");
        continue;
      }
      if (std::find(f.known.begin(), f.known.end(), key) != f.known.end()) continue;
      // Top-level "x-..." keys are free for YAML anchors (`x-defaults: &d {...}`), as in compose
      // files; everything else unknown is an error.
      if (f.path.empty() && key.rfind("x-", 0) == 0) continue;
      if (key == "<<") {
        error(line, path, "YAML merge keys (<<) are not supported; repeat the keys");
        continue;
      }
      std::string reason = "unknown key";
      std::size_t best = 3;
      for (const auto& k : f.known) {
        const std::size_t d = edit_distance(key, k);
        if (d < best) {
          best = d;
          reason = "unknown key (did you mean '" + k + "'?)";
        }
      }
      error(line, path, reason);
    }
  }

  std::optional<std::string> scalar(const YAML::Node& node, const std::string& path) {
    Substituted s = substitute_env(node.Scalar(), env_);
    if (s.error) {
      error(line_of(node.Mark()), path, *s.error);
      return std::nullopt;
    }
    return std::move(s.value);
  }

  template <class T>
  static const char* expected() {
    if constexpr (std::is_same_v<T, std::string>) return "a string";
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    if constexpr (std::is_same_v<T, int>) return "an integer";
    if constexpr (std::is_same_v<T, std::uint32_t>) return "a non-negative integer";
    if constexpr (std::is_same_v<T, double>) return "a number";
    if constexpr (std::is_same_v<T, Duration>) return "a duration";
    if constexpr (std::is_same_v<T, WallTime>) return "an ISO 8601 time";
    if constexpr (std::is_enum_v<T>) return "a string";
    return "a value";
  }

  // Each returns the reason on failure.
  static std::optional<std::string> convert(const std::string& s, std::string& out) {
    out = s;
    return std::nullopt;
  }
  static std::optional<std::string> convert(const std::string& s, bool& out) {
    const std::string l = lower(s);
    if (l == "true" || l == "yes" || l == "on") {
      out = true;
    } else if (l == "false" || l == "no" || l == "off") {
      out = false;
    } else {
      return "expected true or false, got " + quoted(s);
    }
    return std::nullopt;
  }
  static std::optional<std::string> convert(const std::string& s, int& out) {
    if (auto v = parse_int<int>(s)) {
      out = *v;
      return std::nullopt;
    }
    return "expected an integer, got " + quoted(s);
  }
  static std::optional<std::string> convert(const std::string& s, std::uint32_t& out) {
    if (auto v = parse_int<std::uint32_t>(s)) {
      out = *v;
      return std::nullopt;
    }
    return "expected a non-negative integer, got " + quoted(s);
  }
  static std::optional<std::string> convert(const std::string& s, double& out) {
    if (auto v = parse_double(s); v && std::isfinite(*v)) {
      out = *v;
      return std::nullopt;
    }
    return "expected a number, got " + quoted(s);
  }
  static std::optional<std::string> convert(const std::string& s, Duration& out) {
    if (auto v = parse_duration(s)) {
      out = *v;
      return std::nullopt;
    }
    return "bad duration " + quoted(s) + " (expected e.g. 250ms, 30s, 5m, 1h, 1d or 1m30s)";
  }
  static std::optional<std::string> convert(const std::string& s, WallTime& out) {
    if (auto v = parse_iso8601(s)) {
      out = *v;
      return std::nullopt;
    }
    if (common::parse_iso8601_unchecked(s)) return "bad time " + quoted(s) + " (before 1970)";
    return "bad time " + quoted(s) + " (expected ISO 8601 with a zone, e.g. 2026-11-21T12:00:00Z)";
  }
  template <class E, class = std::enable_if_t<std::is_enum_v<E>>>
  static std::optional<std::string> convert(const std::string& s, E& out) {
    for (const auto& [v, n] : EnumNames<E>::values) {
      if (s == n) {
        out = v;
        return std::nullopt;
      }
    }
    return "expected one of " + enum_choices<E>() + ", got " + quoted(s);
  }

  std::string file_;
  const EnvLookup& env_;
  std::vector<Frame> frames_;
  std::vector<ConfigError> errors_;
  std::map<std::string, int> lines_;
  std::set<std::string> failed_;
};

// ---------------------------------------------------------------------------------------------
// Flattening (for diffs and --check-config output)

class Flattener {
 public:
  explicit Flattener(bool hide_secrets) : hide_(hide_secrets) {}

  template <class F>
  void section(const char* name, F body) {
    prefix_.push_back(join(name));
    body();
    prefix_.pop_back();
  }
  template <class T, class F>
  void list(const char* name, std::vector<T>& items, F item) {
    const std::string path = join(name);
    out.emplace_back(path + ".size", std::to_string(items.size()));
    for (std::size_t i = 0; i < items.size(); ++i) {
      prefix_.push_back(path + "[" + std::to_string(i) + "]");
      item(items[i]);
      prefix_.pop_back();
    }
  }
  template <class T>
  void field(const char* name, T& value, bool secret = false) {
    std::string text = format(value);
    if (secret && hide_ && !text.empty()) text = "<hidden>";
    out.emplace_back(join(name), std::move(text));
  }

  std::vector<std::pair<std::string, std::string>> out;

 private:
  std::string join(const char* name) const {
    return prefix_.empty() ? std::string(name) : prefix_.back() + "." + name;
  }
  static std::string format(const std::string& v) { return v; }
  static std::string format(bool v) { return v ? "true" : "false"; }
  static std::string format(int v) { return std::to_string(v); }
  static std::string format(std::uint32_t v) { return std::to_string(v); }
  static std::string format(double v) { return format_double(v); }
  static std::string format(Duration v) { return format_duration(v); }
  static std::string format(WallTime v) { return format_iso8601(v); }
  static std::string format(const std::vector<std::string>& l) {
    std::string s = "[";
    for (const auto& v : l) s += (s.size() > 1 ? ", " : "") + v;
    return s + "]";
  }
  static std::string format(const LabelMatch& m) {
    std::string s = "{";
    for (const auto& [k, v] : m) s += (s.size() > 1 ? ", " : "") + k + ": " + v;
    return s + "}";
  }
  template <class E, class = std::enable_if_t<std::is_enum_v<E>>>
  static std::string format(E e) {
    return enum_name(e);
  }

  bool hide_;
  std::vector<std::string> prefix_;
};

// ---------------------------------------------------------------------------------------------
// Validation: ranges and relations between keys. Runs after reading, on the keys that read
// cleanly (a key that already failed is not reported twice).

class Validator {
 public:
  Validator(Reader& r, const Config& c) : r_(r), c_(c) {}

  void run() {
    mqtt();
    topics();
    sources();
    output();
    presence();
    overload();
    http();
    store();
    alerts();
    ha();
    core_rules();
    ingest_topics();
    emqx_api();
  }

 private:
  // Reports `reason` on `path` unless ok, or unless one of the involved keys already failed.
  void check(bool ok, const std::string& path, const std::string& reason,
             std::initializer_list<std::string> also = {}) {
    if (ok || r_.failed(path)) return;
    for (const std::string& other : also)
      if (r_.failed(other)) return;
    r_.error(r_.line_for(path), path, reason);
  }
  void positive(Duration d, const std::string& path) {
    check(d > Duration::zero(), path, "must be greater than 0");
  }
  void qos(int q, const std::string& path) {
    check(q >= 0 && q <= 2, path, "must be 0, 1 or 2, got " + std::to_string(q));
  }
  void http_url(const std::string& url, const std::string& path, bool required,
                const std::string& why) {
    if (url.empty()) {
      check(!required, path, "is required " + why);
      return;
    }
    check(url.rfind("https://", 0) == 0 || url.rfind("http://", 0) == 0, path,
          "must start with https:// or http://");
  }
  void readable(const std::string& file, const std::string& path) {
    if (file.empty()) return;
    std::ifstream in(file);
    check(in.good(), path, "cannot read " + quoted(file) + ": " + std::strerror(errno));
  }

  void mqtt() {
    const auto& m = c_.mqtt;
    const auto sep = m.uri.find("://");
    static const std::set<std::string> schemes = {"tcp", "mqtt", "ssl", "mqtts", "ws", "wss"};
    if (sep == std::string::npos || sep + 3 >= m.uri.size()) {
      check(false, "mqtt.uri", "expected scheme://host:port, e.g. tcp://127.0.0.1:1883");
    } else {
      check(schemes.count(m.uri.substr(0, sep)) != 0, "mqtt.uri",
            "unsupported scheme " + quoted(m.uri.substr(0, sep)) +
                " (expected tcp, mqtt, ssl, mqtts, ws or wss)");
    }
    // Client ids longer than 23 bytes are legal in 3.1.1 but brokers may refuse them; 65535 is
    // the hard limit of the length prefix.
    check(m.client_id.size() <= 65535, "mqtt.client_id", "is longer than 65535 bytes");
    positive(m.keepalive, "mqtt.keepalive");
    check(m.keepalive.count() % 1000 == 0, "mqtt.keepalive",
          "must be a whole number of seconds (MQTT keep alive is in seconds)");
    check(m.keepalive <= std::chrono::seconds(65535), "mqtt.keepalive",
          "must be at most 65535s (MQTT limit)");
    check(m.password.empty() || !m.username.empty(), "mqtt.password",
          "needs mqtt.username (MQTT sends no password without a user name)");
    check(m.tls.cert_file.empty() == m.tls.key_file.empty(),
          m.tls.cert_file.empty() ? "mqtt.tls.key_file" : "mqtt.tls.cert_file",
          m.tls.cert_file.empty() ? "needs mqtt.tls.cert_file" : "needs mqtt.tls.key_file");
    readable(m.tls.ca_file, "mqtt.tls.ca_file");
    readable(m.tls.cert_file, "mqtt.tls.cert_file");
    readable(m.tls.key_file, "mqtt.tls.key_file");
    positive(m.reconnect.min_backoff, "mqtt.reconnect.min_backoff");
    check(m.reconnect.min_backoff <= m.reconnect.max_backoff, "mqtt.reconnect.max_backoff",
          "must be at least mqtt.reconnect.min_backoff (" +
              format_duration(m.reconnect.min_backoff) + ")",
          {"mqtt.reconnect.min_backoff"});
    check(m.reconnect.jitter >= 0.0 && m.reconnect.jitter <= 1.0, "mqtt.reconnect.jitter",
          "must be between 0 and 1, got " + format_double(m.reconnect.jitter));
    qos(m.qos, "mqtt.qos");
  }

  void topics() {
    const auto& t = c_.topics;
    auto pattern = [&](const std::string& p, const char* key, bool require_id, bool optional) {
      const std::string path = std::string("topics.") + key;
      if (p.empty() && optional) return;
      if (auto reason = validate_topic_pattern(p, require_id)) check(false, path, *reason);
    };
    // With sources, topics.status may be "" (only the sources are read).
    pattern(t.status, "status", true, !c_.sources.empty());
    pattern(t.heartbeat, "heartbeat", true, true);
    pattern(t.emqx_connected, "emqx_connected", true, true);
    pattern(t.emqx_disconnected, "emqx_disconnected", true, true);
    pattern(t.broker_ext, "broker_ext", false, true);
    pattern(t.emqx_uptime, "emqx_uptime", false, true);
    pattern(t.mosquitto_uptime, "mosquitto_uptime", false, true);
    for (std::size_t i = 0; i < t.ignore_ids.size(); ++i)
      check(!t.ignore_ids[i].empty(), "topics.ignore_ids[" + std::to_string(i) + "]",
            "must not be empty (a glob such as 'backend-*')");
  }

  void sources() {
    for (std::size_t i = 0; i < c_.sources.size(); ++i) {
      const auto& s = c_.sources[i];
      const std::string at = "sources[" + std::to_string(i) + "]";
      if (!s.preset.empty() && ingest::find_preset(s.preset) == nullptr) {
        std::string names;
        for (auto n : ingest::preset_names()) names += (names.empty() ? "" : ", ") + std::string(n);
        check(false, at + ".preset", "unknown preset " + quoted(s.preset) + " (known: " + names + ")");
      }
      check(!s.preset.empty() || !s.status.empty() || !s.heartbeat.empty(), at,
            "needs a preset or at least one status or heartbeat pattern");
      auto patterns = [&](const std::vector<std::string>& list, const char* key, bool id) {
        for (std::size_t k = 0; k < list.size(); ++k)
          if (auto reason = validate_topic_pattern(list[k], id))
            check(false, at + "." + key + "[" + std::to_string(k) + "]", *reason);
      };
      patterns(s.status, "status", true);
      patterns(s.heartbeat, "heartbeat", true);
      if (!s.device_class.empty()) {
        const bool user = std::any_of(c_.device_classes.begin(), c_.device_classes.end(),
                                      [&](const auto& d) { return d.name == s.device_class; });
        const bool builtin = std::any_of(
            ingest::preset_device_classes().begin(), ingest::preset_device_classes().end(),
            [&](const auto& d) { return d.timeouts.name == s.device_class; });
        check(user || builtin, at + ".device_class",
              "no device class named " + quoted(s.device_class) + " (define it under device_classes)");
      }
    }
    for (std::size_t i = 0; i < c_.device_classes.size(); ++i) {
      const auto& d = c_.device_classes[i];
      const std::string at = "device_classes[" + std::to_string(i) + "]";
      check(!d.name.empty(), at + ".name", "is required");
      for (std::size_t j = 0; j < i; ++j)
        check(c_.device_classes[j].name != d.name || d.name.empty(), at + ".name",
              "class " + quoted(d.name) + " is defined twice");
      const Duration floor = d.heartbeat_timeout_floor.count() > 0 ? d.heartbeat_timeout_floor
                                                                   : c_.presence.heartbeat_timeout_floor;
      const Duration ceiling = d.heartbeat_timeout_ceiling.count() > 0
                                   ? d.heartbeat_timeout_ceiling
                                   : c_.presence.heartbeat_timeout_ceiling;
      check(floor <= ceiling, at + ".heartbeat_timeout_ceiling",
            "must be at least the class's heartbeat_timeout_floor (" + format_duration(floor) + ")");
    }
    check(c_.device_classes.size() <= core::kMaxDeviceClasses, "device_classes",
          "at most 255 classes");
  }

  void plain_topic(const std::string& topic, const std::string& path) {
    if (topic.empty()) return check(false, path, "must not be empty");
    check(topic.find_first_of("+#") == std::string::npos, path,
          "must not contain '+' or '#' (it is a topic we publish to)");
    check(topic.front() != '/' && topic.back() != '/', path,
          "must not start or end with '/'");
  }

  void output() {
    const auto& o = c_.output;
    plain_topic(o.device_prefix, "output.device_prefix");
    plain_topic(o.fleet_topic, "output.fleet_topic");
    qos(o.qos, "output.qos");
    check(o.publish_rate >= 0.0, "output.publish_rate",
          "must be 0 (unlimited) or more, got " + format_double(o.publish_rate));
  }

  void presence() {
    const auto& p = c_.presence;
    positive(p.offline_grace, "presence.offline_grace");
    positive(p.online_stable_for, "presence.online_stable_for");
    // A timeout shorter than the device's own interval would declare every device dead between
    // two heartbeats.
    check(p.heartbeat_timeout_factor >= 1.0, "presence.heartbeat_timeout_factor",
          "must be at least 1, got " + format_double(p.heartbeat_timeout_factor));
    positive(p.heartbeat_timeout_floor, "presence.heartbeat_timeout_floor");
    positive(p.heartbeat_timeout_ceiling, "presence.heartbeat_timeout_ceiling");
    check(p.heartbeat_timeout_floor <= p.heartbeat_timeout_ceiling,
          "presence.heartbeat_timeout_ceiling",
          "must be at least presence.heartbeat_timeout_floor (" +
              format_duration(p.heartbeat_timeout_floor) + ")",
          {"presence.heartbeat_timeout_floor"});
    positive(p.heartbeat_default_interval, "presence.heartbeat_default_interval");
    check(p.heartbeat_min_samples >= 1, "presence.heartbeat_min_samples", "must be at least 1");
    check(p.flap_history >= 2 && p.flap_history <= 32, "presence.flap_history",
          "must be between 2 and 32 (one 32-bit history word per device), got " +
              std::to_string(p.flap_history));
    positive(p.flap_window, "presence.flap_window");
    check(p.flap_high > 0.0 && p.flap_high <= 1.0, "presence.flap_high",
          "must be in (0, 1], got " + format_double(p.flap_high));
    check(p.flap_low >= 0.0 && p.flap_low < 1.0, "presence.flap_low",
          "must be in [0, 1), got " + format_double(p.flap_low));
    // Hysteresis: equal thresholds would let a device flip in and out of flapping on every event.
    check(p.flap_low < p.flap_high, "presence.flap_low",
          "must be less than presence.flap_high (" + format_double(p.flap_high) + ")",
          {"presence.flap_high"});
    positive(p.restart_grace_min, "presence.restart_grace_min");
    positive(p.restart_grace_settle, "presence.restart_grace_settle");
    check(p.restart_grace_min <= p.restart_grace_max, "presence.restart_grace_max",
          "must be at least presence.restart_grace_min (" +
              format_duration(p.restart_grace_min) + ")",
          {"presence.restart_grace_min"});
    check(p.max_label_keys >= 1 && p.max_label_keys <= 4096, "presence.max_label_keys",
          "must be between 1 and 4096, got " + std::to_string(p.max_label_keys));
    check(p.max_label_values >= 1 && p.max_label_values <= 10000000, "presence.max_label_values",
          "must be between 1 and 10000000, got " + std::to_string(p.max_label_values));
    // Expiry (issue 19 item 9). 0 = never; a window shorter than offline_grace would forget a
    // one-off id before it could even be judged offline, which no one means.
    check(p.forget_unconfirmed_after.count() == 0 ||
              p.forget_unconfirmed_after >= p.offline_grace,
          "presence.forget_unconfirmed_after",
          "must be 0 (never) or at least presence.offline_grace (" +
              format_duration(p.offline_grace) + ")",
          {"presence.offline_grace"});
    check(p.forget_after.count() == 0 || p.forget_after >= p.forget_unconfirmed_after,
          "presence.forget_after",
          "must be 0 (never) or at least presence.forget_unconfirmed_after (" +
              format_duration(p.forget_unconfirmed_after) + ")",
          {"presence.forget_unconfirmed_after"});
    check(p.forget_after.count() <= 3650LL * 24 * 3600 * 1000, "presence.forget_after",
          "must be at most 3650d");
    check(p.forget_unconfirmed_after.count() >= 0 && p.forget_after.count() >= 0,
          "presence.forget_after", "must not be negative");
  }

  // The engine's own rule (core::config_error) has the last word: a file the core would refuse is
  // refused here, at the key, instead of presenced starting with an engine that rejects it
  // (issue 12: one config truth; e.g. a heartbeat_timeout_ceiling past 49 days). Asked only when
  // the checks above found nothing in presence.* and device_classes, so nothing is said twice.
  void core_rules() {
    if (failed_under("presence") || failed_under("device_classes")) return;
    // The classes the engine gets: the file's and those the sources' presets name (mqtt_link.h).
    core::Config engine = c_.presence;
    for (const auto& d : ingest::effective_device_classes(c_.sources, device_class_specs(c_)))
      engine.device_classes.push_back(d.timeouts);
    const std::string error = core::config_error(engine);
    if (error.empty()) return;
    // The core names its key first ("offline_grace must be > 0"); device class rules name the class.
    const auto space = error.find(' ');
    const std::string key = error.substr(0, space);
    if (error.rfind("device class", 0) == 0 || error.rfind("at most", 0) == 0)
      check(false, "device_classes", error);
    else
      check(false, "presence." + key, space == std::string::npos ? error : error.substr(space + 1));
  }
  bool failed_under(const std::string& prefix) const { return r_.failed_under(prefix); }

  // The ingest compiler's own verdict on the whole set (topics.*, sources, device classes): what
  // the per-pattern checks above cannot see (no topic pattern at all, a source's preset patterns).
  // Its errors are "topics.<key>: reason" or "sources[i].<key>: reason".
  void ingest_topics() {
    if (failed_under("topics") || failed_under("sources") || failed_under("device_classes")) return;
    ingest::TopicMatcher matcher;
    ingest::SourceTable table;
    std::vector<std::string> errors;
    const auto specs = device_class_specs(c_);
    if (ingest::compile_ingest(topic_options(c_), c_.sources,
                               ingest::effective_device_classes(c_.sources, specs), matcher, table,
                               errors))
      return;
    for (const auto& e : errors) {
      const auto colon = e.find(": ");
      if (colon == std::string::npos) check(false, "topics", e);
      else check(false, e.substr(0, colon), e.substr(colon + 2));
    }
  }

  void overload() {  // issue 16
    const auto& o = c_.overload;
    positive(o.lag_limit, "overload.lag_limit");
    check(o.inbox_limit >= 1, "overload.inbox_limit", "must be at least 1");
    positive(o.clear_after, "overload.clear_after");
    positive(o.alert_after, "overload.alert_after");
  }

  void http() {
    const auto& h = c_.http;
    check(h.token.empty() || h.token_file.empty(), "http.token_file",
          "set either http.token or http.token_file, not both");
    const auto listen = parse_listen(h.listen);
    if (!listen) {
      check(false, "http.listen",
            "expected host:port, e.g. 127.0.0.1:9188 or [::1]:9188, got " + quoted(h.listen));
      return;
    }
    // The API shows every device id and can silence alerts: off the loopback interface it must
    // not be open to anyone who can reach the port.
    if (!listen->second && h.token.empty() && h.token_file.empty()) {
      check(false, r_.present("http.token") ? "http.token" : "http.listen",
            "http.token or http.token_file is required when http.listen is not a loopback "
            "address");
    }
    check(h.max_connections >= 1 && h.max_connections <= 65536, "http.max_connections",
          "must be between 1 and 65536, got " + std::to_string(h.max_connections));
    check(h.max_body_bytes >= 1024 && h.max_body_bytes <= 64u * 1024 * 1024,
          "http.max_body_bytes",
          "must be between 1024 and 67108864, got " + std::to_string(h.max_body_bytes));
    positive(h.idle_timeout, "http.idle_timeout");
    check(h.health_listen.empty() || parse_listen(h.health_listen).has_value(),
          "http.health_listen",
          "expected host:port, e.g. 127.0.0.1:9189, got " + quoted(h.health_listen));
  }

  void ha() {
    const auto& h = c_.ha;
    if (!h.enabled()) return;
    check(!h.name.empty(), "ha.name", "is required when ha.endpoints is set (unique in the pair)");
    for (const auto& e : h.endpoints) http_url(e, "ha.endpoints", true, "");
    check(!h.key_prefix.empty() && h.key_prefix.front() == '/' && h.key_prefix.back() == '/',
          "ha.key_prefix", "must start and end with '/', got '" + h.key_prefix + "'");
    // etcd leases have whole-second TTLs.
    check(h.lease_ttl >= std::chrono::seconds(2), "ha.lease_ttl", "must be at least 2s");
    check(h.fail_open_after > h.lease_ttl, "ha.fail_open_after",
          "must be longer than ha.lease_ttl (else both instances send while etcd is merely slow)");
    positive(h.peer_down_after, "ha.peer_down_after");
  }

  void emqx_api() {
    const auto& e = c_.emqx_api;
    http_url(e.url, "emqx_api.url", false, "");
    if (e.url.empty()) return;
    check(!e.api_key.empty() && !e.api_secret.empty(), "emqx_api.api_key",
          "api_key and api_secret are required with emqx_api.url (EMQX: System -> API Keys)");
    check(e.page_size >= 1 && e.page_size <= 10000, "emqx_api.page_size",
          "must be between 1 and 10000 (EMQX's limit), got " + std::to_string(e.page_size));
    positive(e.timeout, "emqx_api.timeout");
  }

  void store() {
    check(!c_.store.dir.empty(), "store.dir", "must not be empty");
    positive(c_.store.snapshot_interval, "store.snapshot_interval");
  }

  void alerts() {
    const auto& a = c_.alerts;
    http_url(a.pagerduty.url, "alerts.pagerduty.url", a.pagerduty.enabled,
             "when alerts.pagerduty.enabled is true");
    check(!a.pagerduty.enabled || !a.pagerduty.routing_key.empty(),
          "alerts.pagerduty.routing_key", "is required when alerts.pagerduty.enabled is true");
    // PagerDuty integration keys are 32 characters; catch a pasted URL or a truncated key.
    check(a.pagerduty.routing_key.empty() || a.pagerduty.routing_key.size() == 32,
          "alerts.pagerduty.routing_key", "must be 32 characters (a PagerDuty integration key)");
    http_url(a.slack.webhook_url, "alerts.slack.webhook_url", a.slack.enabled,
             "when alerts.slack.enabled is true");
    check(a.slack.max_per_second > 0.0, "alerts.slack.max_per_second",
          "must be greater than 0, got " + format_double(a.slack.max_per_second));
    http_url(a.webhook.url, "alerts.webhook.url", a.webhook.enabled,
             "when alerts.webhook.enabled is true");
    check(a.pagerduty.rate_limit_events >= 1, "alerts.pagerduty.rate_limit_events",
          "must be at least 1");
    positive(a.pagerduty.rate_limit_window, "alerts.pagerduty.rate_limit_window");
    http_url(a.pagerduty.change_url, "alerts.pagerduty.change_url",
             a.pagerduty.enabled && a.pagerduty.change_events,
             "when alerts.pagerduty.change_events is true");
    check(!a.alertmanager.enabled || !a.alertmanager.urls.empty(), "alerts.alertmanager.urls",
          "needs at least one URL when alerts.alertmanager.enabled is true");
    for (std::size_t i = 0; i < a.alertmanager.urls.size(); ++i)
      http_url(a.alertmanager.urls[i], "alerts.alertmanager.urls[" + std::to_string(i) + "]", true,
               "(an empty entry)");
    positive(a.alertmanager.resend_interval, "alerts.alertmanager.resend_interval");
    positive(a.alertmanager.notify_for, "alerts.alertmanager.notify_for");
    positive(c_.sparkplug.rebirth_interval, "sparkplug.rebirth_interval");
    check(c_.sparkplug.primary_host.find_first_of("/+#") == std::string::npos, "sparkplug.primary_host",
          "is a Sparkplug host_id: no '/', '+' or '#'");
    http_url(a.teams.webhook_url, "alerts.teams.webhook_url", a.teams.enabled,
             "when alerts.teams.enabled is true");
    check(a.teams.max_per_second > 0.0, "alerts.teams.max_per_second",
          "must be greater than 0, got " + format_double(a.teams.max_per_second));
    http_url(a.dashboard_url, "alerts.dashboard_url", false, "");
    http_url(a.watchdog.url, "alerts.watchdog.url", false, "");
    positive(a.watchdog.interval, "alerts.watchdog.interval");
    const auto& p = a.policy;
    positive(p.group_interval, "alerts.policy.group_interval");
    positive(p.blind_alert_after, "alerts.policy.blind_alert_after");
    positive(p.parent_return_grace, "alerts.policy.parent_return_grace");
    positive(p.incident_window, "alerts.policy.incident_window");
    check(p.incident_open_floor >= 1, "alerts.policy.incident_open_floor", "must be at least 1");
    check(p.incident_open_fraction > 0.0 && p.incident_open_fraction <= 1.0,
          "alerts.policy.incident_open_fraction",
          "must be in (0, 1], got " + format_double(p.incident_open_fraction));
    positive(p.incident_stable_for, "alerts.policy.incident_stable_for");
    positive(p.straggler_grace, "alerts.policy.straggler_grace");
    auto share = [&](double v, const char* key) {
      check(v > 0.0 && v <= 1.0, key, "must be in (0, 1], got " + format_double(v));
    };
    share(p.incident_recovered_share, "alerts.policy.incident_recovered_share");
    share(p.storm_open_fraction, "alerts.policy.storm_open_fraction");
    share(p.storm_flapping_fraction, "alerts.policy.storm_flapping_fraction");
    check(p.storm_open_floor >= 1, "alerts.policy.storm_open_floor", "must be at least 1");
    check(p.storm_flapping_floor >= 1, "alerts.policy.storm_flapping_floor", "must be at least 1");
    check(p.storm_open_factor >= 1.0, "alerts.policy.storm_open_factor",
          "must be at least 1, got " + format_double(p.storm_open_factor));
    check(p.details_max_devices >= 1 && p.details_max_devices <= 10000,
          "alerts.policy.details_max_devices",
          "must be in 1..10000 (PagerDuty caps an event at 512 KB), got " +
              std::to_string(p.details_max_devices));
    for (std::size_t i = 0; i < a.routes.size(); ++i) {
      const auto& route = a.routes[i];
      const std::string path = "alerts.routes[" + std::to_string(i) + "]";
      if (r_.failed(path)) continue;
      check(core::severity_from_word(route.severity).has_value(),
            path + ".severity",
            "expected one of critical, error, warning, info, got " + quoted(route.severity));
      if (!route.slack_webhook_url.empty())
        http_url(route.slack_webhook_url, path + ".slack_webhook_url", false, "");
    }
    for (std::size_t i = 0; i < a.silences.size(); ++i) {
      const auto& s = a.silences[i];
      const std::string path = "alerts.silences[" + std::to_string(i) + "]";
      if (r_.failed(path)) continue;
      // An empty matcher would silence every alert, which is never what someone meant.
      check(!s.match.empty(), path + ".match", "must name at least one label");
      check(r_.present(path + ".starts"), path + ".starts", "is required");
      check(r_.present(path + ".ends"), path + ".ends", "is required");
      if (r_.present(path + ".starts") && r_.present(path + ".ends"))
        check(s.starts < s.ends, path + ".ends", "must be after starts", {path + ".starts"});
    }
  }

  // host:port or [v6]:port -> (host, is_loopback)
  static std::optional<std::pair<std::string, bool>> parse_listen(const std::string& listen) {
    std::string host;
    std::string port;
    if (!listen.empty() && listen.front() == '[') {
      const auto close = listen.find(']');
      if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
        return std::nullopt;
      host = listen.substr(1, close - 1);
      port = listen.substr(close + 2);
    } else {
      const auto colon = listen.rfind(':');
      if (colon == std::string::npos || listen.find(':') != colon) return std::nullopt;
      host = listen.substr(0, colon);
      port = listen.substr(colon + 1);
    }
    const auto p = parse_int<int>(port);
    if (host.empty() || !p || *p < 0 || *p > 65535) return std::nullopt;  // 0 = any free port
    bool loopback = host == "localhost";
    in_addr v4{};
    in6_addr v6{};
    if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
      loopback = (ntohl(v4.s_addr) >> 24) == 127;
    } else if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
      loopback = IN6_IS_ADDR_LOOPBACK(&v6);
    }
    return std::make_pair(host, loopback);
  }

  Reader& r_;
  const Config& c_;
};

// Post-processing that fills in derived values (after validation passed).
std::optional<std::string> read_token_file(const std::string& path, std::string& token) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + quoted(path) + ": " + std::strerror(errno);
  std::ostringstream s;
  s << in.rdbuf();
  token = s.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) return quoted(path) + " is empty";
  return std::nullopt;
}

// What the raw text looks like, for the checks yaml-cpp 0.7 cannot be trusted with.
struct TextShape {
  int first_content_line = 0;     // first line that is not blank, a comment, '---' or a null
  int second_document_line = 0;   // a '---' after content: a second document
};

TextShape text_shape(std::string_view text) {
  TextShape shape;
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    const bool marker = line.substr(0, 3) == "---" &&
                        (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    if (marker) {
      if (shape.first_content_line > 0) {
        shape.second_document_line = line_no;
        break;
      }
      line.remove_prefix(3);
    }
    const std::size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) continue;
    line.remove_prefix(first);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.remove_suffix(1);
    if (line.empty() || line.front() == '#' || line == "..." || line == "~" || line == "null" ||
        line == "Null" || line == "NULL" || line.front() == '%')  // %YAML directives
      continue;
    if (shape.first_content_line == 0) shape.first_content_line = line_no;
  }
  return shape;
}

// Keys whose change only takes effect after a restart. Prefix match on whole key components.
// Everything the running process has already built from (connections, subscriptions, listeners,
// the engine and its retained topics) is listed; what is consulted per decision or per send is not.
constexpr const char* kRestartKeys[] = {
    "mqtt",                  // the broker connection and session are built once
    "topics",                // subscriptions
    "sources",               // subscriptions and parsers
    "sparkplug",             // the spBv1.0/# subscription and the edge-node tracker
    "device_classes",        // core::Engine takes its classes at construction
    "overload",              // the detector is built with the MQTT link (issue 16)
    "output.device_prefix",  // retained state would be left behind on the old topics
    "output.fleet_topic",
    "presence",              // core::Engine takes its Config at construction
    "alerts.policy",         // policy lives in the engine as well
    "http",                  // the listener is bound once
    "store.dir",             // open files and the snapshot lock
    "mode",                  // switching the decision model mid-run would mix semantics
    "ha",                    // the election and its lease are built once
    "emqx_api",              // given to the service at start
};

}  // namespace

// -----------------------------------------------------------------------------------------------
// Public functions

std::string to_string(const ConfigError& e) {
  std::string out = e.file;
  if (e.line > 0) out += ":" + std::to_string(e.line);
  if (!e.key.empty()) out += ": " + e.key;
  out += ": " + e.reason;
  return out;
}

std::optional<std::string> real_env(std::string_view name) {
  const std::string n(name);
  if (const char* v = std::getenv(n.c_str())) return std::string(v);
  return std::nullopt;
}

LoadResult load_config_string(std::string_view text, const std::string& name,
                              const EnvLookup& env) {
  LoadResult result;
  // yaml-cpp 0.7's LoadAll() can loop forever allocating on some broken input (jbeder/yaml-cpp
  // #1319, found by the mangled-config test), so the document count is checked on the text.
  const TextShape shape = text_shape(text);
  if (shape.second_document_line > 0) {
    result.errors.push_back({name, shape.second_document_line, "",
                             "only one YAML document is allowed (found a second '---')"});
    return result;
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    // Broken syntax: one error at yaml-cpp's mark; nothing after it can be trusted.
    result.errors.push_back({name, line_of(e.mark), "", e.msg});
    return result;
  }
  if ((!root.IsDefined() || root.IsNull()) && shape.first_content_line > 0) {
    // yaml-cpp 0.7 reads some garbage (e.g. a line starting with ',') as an empty document
    // (jbeder/yaml-cpp #1318). Running on all defaults would silently drop the whole file.
    result.errors.push_back({name, shape.first_content_line, "",
                             "not valid YAML: nothing could be read from here on"});
    return result;
  }
  Config config;
  Reader reader(name, env);
  reader.run(root, config);
  Validator(reader, config).run();
  if (config.mqtt.client_id.empty()) config.mqtt.client_id = "presenced-" + hostname();
  if (!config.http.token_file.empty() && config.http.token.empty()) {
    if (auto reason = read_token_file(config.http.token_file, config.http.token))
      reader.error(reader.line_for("http.token_file"), "http.token_file", *reason);
  }
  result.errors = reader.take_errors();
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

LoadResult load_config_file(const std::string& path, const EnvLookup& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    result.errors.push_back({path, 0, "", std::string("cannot read: ") + std::strerror(errno)});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_config_string(text.str(), path, env);
}

std::vector<std::pair<std::string, std::string>> flatten_config(const Config& config,
                                                                bool hide_secrets) {
  Config copy = config;  // describe() takes non-const references (it also drives reading)
  Flattener f(hide_secrets);
  describe(f, copy);
  return std::move(f.out);
}

bool requires_restart(std::string_view key) {
  for (std::string_view prefix : kRestartKeys) {
    if (key.substr(0, prefix.size()) == prefix &&
        (key.size() == prefix.size() || key[prefix.size()] == '.' || key[prefix.size()] == '['))
      return true;
  }
  return false;
}

ConfigDiff diff_config(const Config& running, const Config& next) {
  const auto a = flatten_config(running, false);
  const auto b = flatten_config(next, false);
  std::map<std::string, std::string> old_values(a.begin(), a.end());
  ConfigDiff diff;
  std::set<std::string> seen;
  auto add = [&](const std::string& key) {
    diff.changed.push_back(key);
    if (requires_restart(key)) diff.restart_required.push_back(key);
  };
  for (const auto& [key, value] : b) {
    seen.insert(key);
    auto it = old_values.find(key);
    if (it == old_values.end() || it->second != value) add(key);
  }
  for (const auto& [key, value] : a)  // list entries that disappeared
    if (!seen.count(key)) add(key);
  return diff;
}

Config apply_reloadable(const Config& running, const Config& next) {
  // Start from the running config (so everything listed in kRestartKeys keeps its value) and take
  // over what can change at run time. The unit test checks this against requires_restart().
  Config c = running;
  c.output.retain = next.output.retain;
  c.output.qos = next.output.qos;
  c.output.publish_rate = next.output.publish_rate;
  c.output.coalesce_interval = next.output.coalesce_interval;
  c.store.snapshot_interval = next.store.snapshot_interval;
  const AlertPolicyConfig policy = running.alerts.policy;
  c.alerts = next.alerts;
  c.alerts.policy = policy;
  c.log = next.log;
  return c;
}

ReloadResult reload_config(const Config& running, const std::string& path, const EnvLookup& env) {
  ReloadResult r;
  r.load = load_config_file(path, env);
  if (r.load.config) {
    r.diff = diff_config(running, *r.load.config);
    r.to_apply = apply_reloadable(running, *r.load.config);
  }
  return r;
}

int check_config(const std::string& path, std::ostream& out, std::ostream& err,
                 const EnvLookup& env) {
  const LoadResult r = load_config_file(path, env);
  for (const auto& e : r.errors) err << to_string(e) << '\n';
  if (!r.config) return 2;  // the exit status presenced uses for a bad config
  out << path << ": OK\n";
  for (const auto& [key, value] : flatten_config(*r.config)) out << key << " = " << value << '\n';
  return 0;
}

std::optional<Duration> parse_duration(std::string_view text) {
  if (text == "0") return Duration::zero();
  // Units must appear largest first, each at most once: "1m30s" yes, "30s1m" and "1s1s" no.
  struct Unit {
    std::string_view name;
    std::int64_t ms;
  };
  static constexpr Unit units[] = {{"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000},
                                   {"s", 1'000},      {"ms", 1}};
  constexpr std::int64_t kMax = std::int64_t{100} * 366 * 86'400'000;  // 100 years
  std::int64_t total = 0;
  std::size_t next_unit = 0;
  std::size_t pos = 0;
  if (text.empty()) return std::nullopt;
  while (pos < text.size()) {
    const std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
    if (pos == start || pos - start > 12) return std::nullopt;
    const auto n = parse_int<std::int64_t>(text.substr(start, pos - start));
    std::size_t u = next_unit;
    for (; u < std::size(units); ++u) {
      const auto& name = units[u].name;
      if (text.substr(pos, name.size()) != name) continue;
      // "m" must not swallow the "m" of "ms".
      if (name == "m" && text.substr(pos, 2) == "ms") continue;
      break;
    }
    if (!n || u == std::size(units)) return std::nullopt;
    pos += units[u].name.size();
    next_unit = u + 1;
    total += *n * units[u].ms;
    if (total > kMax) return std::nullopt;
  }
  return Duration{total};
}

std::string format_duration(Duration d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  static constexpr std::pair<const char*, std::int64_t> units[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};
  for (const auto& [name, size] : units) {
    if (ms >= size) {
      out += std::to_string(ms / size) + name;
      ms %= size;
    }
  }
  return out;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
  const auto n = parse_int<std::uint64_t>(text.substr(0, pos));
  if (!n) return std::nullopt;
  const std::string unit = lower(text.substr(pos));
  static const std::map<std::string, std::uint64_t> units = {
      {"", 1},          {"b", 1},
      {"kb", 1000},     {"mb", 1000'000},        {"gb", 1000'000'000},
      {"kib", 1 << 10}, {"mib", 1 << 20},        {"gib", std::uint64_t{1} << 30}};
  const auto it = units.find(unit);
  if (it == units.end()) return std::nullopt;
  if (*n > std::numeric_limits<std::uint64_t>::max() / it->second) return std::nullopt;
  return *n * it->second;
}

Substituted substitute_env(std::string_view text, const EnvLookup& env) {
  Substituted out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t dollar = text.find('$', pos);
    if (dollar == std::string_view::npos) {
      out.value.append(text.substr(pos));
      break;
    }
    out.value.append(text.substr(pos, dollar - pos));
    if (text.substr(dollar, 3) == "$${") {  // escaped: literal "${"
      out.value += "${";
      pos = dollar + 3;
      continue;
    }
    if (text.substr(dollar, 2) != "${") {  // a lone '$' ($SYS/...) is kept as is
      out.value += '$';
      pos = dollar + 1;
      continue;
    }
    const std::size_t close = text.find('}', dollar);
    if (close == std::string_view::npos) {
      out.error = "unterminated '${' (write $${ for a literal ${)";
      return out;
    }
    const std::string_view inner = text.substr(dollar + 2, close - dollar - 2);
    const std::size_t dflt = inner.find(":-");
    const std::string_view name = inner.substr(0, dflt);
    const bool valid_name =
        !name.empty() && !(name[0] >= '0' && name[0] <= '9') &&
        std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
        });
    if (!valid_name) {
      out.error = "bad variable name " + quoted(name) + " in ${...}";
      return out;
    }
    std::optional<std::string> value = env(name);
    // Like the shell: ${VAR:-default} also applies when VAR is set but empty.
    if (dflt != std::string_view::npos && (!value || value->empty()))
      value = std::string(inner.substr(dflt + 2));
    if (!value) {
      out.error = "environment variable " + std::string(name) +
                  " is not set (use ${" + std::string(name) + ":-default} for a default)";
      return out;
    }
    out.value += *value;
    pos = close + 1;
  }
  return out;
}

const char* to_string(MqttProtocol v) { return enum_name(v); }
const char* to_string(Mode v) { return enum_name(v); }

}  // namespace presence::app
