// Ranges and relations between keys (issue 3; issue 12: config.cpp split by concern). Runs after
// reading, on the keys that read cleanly. What another room owns is asked there, not copied:
// core::config_problems for presence.* and the device classes, core::policy_problems and
// core::fleet_problems for alerts.policy.*, ingest::compile_ingest for the topics, sources and
// presets (docs/architecture.md, "Errors"; issue 12, one config truth).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "presence/app/config_parse.h"
#include "presence/core/words.h"
#include "presence/ingest/presets.h"

namespace presence::app::internal {

namespace {

// ---------------------------------------------------------------------------------------------
// Validation: ranges and relations between keys. Runs after reading, on the keys that read
// cleanly (a key that already failed is not reported twice).

class Validator {
 public:
  Validator(Diagnostics& r, const Config& c) : r_(r), c_(c) {}

  void run() {
    mqtt();
    topics();
    output();
    overload();
    http();
    store();
    alerts();
    ha();
    core_rules();
    policy_rules();
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

  // presence.* and device_classes: the engine's own rules (core::config_problems), asked, not
  // copied (issue 12: one config truth), so a file that loads is one the engine accepts (e.g. a
  // heartbeat_timeout_ceiling past 49 days). Each problem at its key and line; a problem under a
  // key that failed to read, or a relation whose other key did, is left unsaid.
  void core_rules() {
    // The classes the engine gets: the file's, then those the sources' presets name (mqtt_link.h).
    core::Config engine = c_.presence;
    for (const auto& d : ingest::effective_device_classes(c_.sources, device_class_specs(c_)))
      engine.device_classes.push_back(d.timeouts);
    for (const auto& problem : core::config_problems(engine, "presence.")) {
      const bool top = problem.key.rfind("device_classes", 0) == 0;  // its own YAML section
      const std::string key = top ? problem.key : "presence." + problem.key;
      if (failed_at_or_above(key)) continue;
      if (problem.other.empty()) check(false, key, problem.reason);
      else check(false, key, problem.reason, {"presence." + problem.other});
    }
  }
  // alerts.policy.* (and alerts.routes[i].match): the alert policy's and the fleet monitor's own
  // rules (core::policy_problems, core::fleet_problems), asked of the configs the service builds
  // from this file (policy_config, fleet_config), not copied (issue 12: one config truth). Each at
  // the YAML key it comes from; what the mapping derives is said at the key it derives from
  // (window_resolution and storm_baseline_tau from incident_window, incident_close_fraction from
  // incident_open_fraction, incident_merge_within from group_wait), so a derived problem whose
  // source was already reported is not said twice.
  void policy_rules() {
    static const std::map<std::string, std::string> derived = {
        {"window_resolution", "incident_window"},
        {"storm_baseline_tau", "incident_window"},
        {"incident_close_fraction", "incident_open_fraction"},
        {"incident_merge_within", "group_wait"}};
    std::set<std::string> said;  // one problem per YAML key
    auto report = [&](const core::ConfigProblem& problem) {
      std::string key;
      if (problem.key.rfind("rules[", 0) == 0) {
        key = "alerts.routes" + problem.key.substr(5);  // rules[i] is alerts.routes[i]
      } else {
        const auto d = derived.find(problem.key);
        key = "alerts.policy." + (d == derived.end() ? problem.key : d->second);
      }
      if (failed_at_or_above(key) || !said.insert(key).second) return;
      check(false, key, problem.reason);
    };
    for (const auto& problem : core::policy_problems(policy_config(c_))) report(problem);
    for (const auto& problem : core::fleet_problems(fleet_config(c_))) report(problem);
  }
  // This key, or the section or list entry it is in, failed to read.
  bool failed_at_or_above(std::string path) const {
    while (!path.empty()) {
      if (r_.failed(path)) return true;
      const auto cut = path.find_last_of(".[");
      if (cut == std::string::npos) break;
      path.resize(cut);
    }
    return false;
  }
  bool failed_under(const std::string& prefix) const { return r_.failed_under(prefix); }

  // sources, and what the per-pattern checks of topics() cannot see (no topic pattern at all, a
  // source's preset patterns): the ingest compiler's own verdict on the whole set (issue 12: one
  // config truth; the loader kept a copy of its preset, pattern and device_class checks). Its
  // errors are "topics.<key>: reason" or "sources[i]<.key>: reason". Left unsaid: topics.* once
  // topics() said something there (broker_ext compiles as six patterns of other names), anything
  // at or under a key already reported, or in an entry that failed to read, and everything while
  // a device class failed to read (a class without its name would be "no device class named").
  void ingest_topics() {
    if (failed_under("device_classes")) return;
    ingest::TopicMatcher matcher;
    ingest::SourceTable table;
    std::vector<std::string> errors;
    const auto specs = device_class_specs(c_);
    if (ingest::compile_ingest(topic_options(c_), c_.sources,
                               ingest::effective_device_classes(c_.sources, specs), matcher, table,
                               errors))
      return;
    const bool topics_said = failed_under("topics");
    for (const auto& e : errors) {
      const auto colon = e.find(": ");
      const std::string key = colon == std::string::npos ? "topics" : e.substr(0, colon);
      std::string reason = colon == std::string::npos ? e : e.substr(colon + 2);
      // "topic pattern 'a/{id': why": the key already says which pattern (validate_topic_pattern).
      if (reason.rfind("topic pattern '", 0) == 0)
        if (const auto end = reason.find("': "); end != std::string::npos) reason.erase(0, end + 3);
      if (key.rfind("topics", 0) == 0 && topics_said) continue;
      if (failed_under(key) || failed_at_or_above(key)) continue;
      check(false, key, reason);
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
    if (!listen->loopback && h.token.empty() && h.token_file.empty()) {
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


  Diagnostics& r_;
  const Config& c_;
};

}  // namespace

void check_rules(Diagnostics& diagnostics, const Config& config) {
  Validator(diagnostics, config).run();
}

}  // namespace presence::app::internal
