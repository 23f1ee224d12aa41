// presenced configuration: YAML file -> one validated Config (issue 3, "Configuration").
//
// Key names are the member names below (STYLE.md habit 10): `presence.offline_grace` in YAML is
// Config::presence.offline_grace here, in the metrics and in docs/configuration.md. Every default
// and its reason is in config/presenced.yaml and docs/configuration.md.
//
// Error policy (STYLE.md habit 7): a broken config fails fast at start. The loader never stops at
// the first problem: it collects every error as `file:line: key: reason` so that
// `presenced --check-config FILE` shows them all in one run.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "presence/common/log.h"
#include "presence/core/overload.h"
#include "presence/core/config.h"
#include "presence/core/fleet.h"
#include "presence/core/policy.h"
#include "presence/ingest/mqtt_config.h"
#include "presence/ingest/source.h"
#include "presence/ingest/topics.h"

namespace presence::app {

using Duration = std::chrono::milliseconds;
using WallTime = std::chrono::sys_time<std::chrono::seconds>;

// ---------------------------------------------------------------------------------------------
// mqtt: how presenced connects to the broker. One struct, the config's own key names, from the
// file to the Paho connection (presence/ingest/mqtt_config.h; issue 12).
using MqttTlsConfig = ingest::MqttTlsConfig;
using MqttReconnectConfig = ingest::MqttReconnectConfig;
using MqttProtocol = ingest::MqttProtocol;
using MqttConfig = ingest::MqttConfig;

// ---------------------------------------------------------------------------------------------
// topics: MQTT topic patterns presenced subscribes to. {id} = device/client id (exactly one,
// a whole topic level), {node} = broker node name (optional). See validate_topic_pattern().
// An empty pattern (except status) means "do not subscribe", e.g. the emqx_* topics on Mosquitto.
struct TopicsConfig {
  std::string status = "devices/{id}/status";        // birth / last-will payloads
  std::string heartbeat = "devices/{id}/heartbeat";  // periodic proof of life
  std::string emqx_connected = "$SYS/brokers/{node}/clients/{id}/connected";
  std::string emqx_disconnected = "$SYS/brokers/{node}/clients/{id}/disconnected";
  std::string broker_ext = "$SYS/presence/{node}";        // broker-ext plugin events (no {id})
  std::string emqx_uptime = "$SYS/brokers/{node}/uptime";  // broker restart detection (no {id})
  std::string mosquitto_uptime = "$SYS/broker/uptime";     // broker restart detection (no {id})
  // Ids that are not devices (fnmatch globs): backend services and other presenced instances
  // that broker-ext / EMQX report like any client. presenced's own client id is always ignored.
  std::vector<std::string> ignore_ids;
};

// ---------------------------------------------------------------------------------------------
// sources (issue 14): several inputs, each a preset or patterns + a payload map. topics.status and
// topics.heartbeat stay the first source (set both to "" to use only `sources`). Empty keys take
// the preset's value. docs/configuration.md "sources", docs/recipes.md.
// The same struct the ingest compiler takes (presence/ingest/source.h), key for key.
using SourceConfig = ingest::SourceSpec;

// device_classes (issue 14): timeouts per class; 0 = the presence.* value.
struct DeviceClassConfig {
  std::string name;
  std::map<std::string, std::string> match;  // devices whose labels all match join the class
  Duration heartbeat_timeout_floor{0};
  Duration heartbeat_timeout_ceiling{0};
  Duration offline_grace{0};
};

// ---------------------------------------------------------------------------------------------
// output: what presenced publishes back to MQTT.
struct OutputConfig {
  std::string device_prefix = "presence/devices";  // <device_prefix>/<id> retained state
  std::string fleet_topic = "presence/fleet";       // fleet summary
  bool retain = true;  // late subscribers see the current state at once
  int qos = 1;         // 0..2
  // Upper bound on messages/s presenced publishes, so a fleet-wide event cannot turn presenced
  // itself into a storm source (post-mortem 000). 0 = unlimited.
  double publish_rate = 1000.0;
  // A device changing state several times within coalesce_interval is published once (last
  // state wins).
  Duration coalesce_interval{std::chrono::seconds(1)};
};

// ---------------------------------------------------------------------------------------------
// http: health, metrics, API, dashboard.
struct HttpConfig {
  std::string listen = "127.0.0.1:9188";  // host:port; "[::1]:9188" for IPv6
  // Bearer token for the API. Required when listen is not a loopback address. When token_file is
  // set, the loader reads it (trailing whitespace trimmed) into token; setting both is an error.
  std::string token;
  std::string token_file;
  // Limits per listener (issue 19 items 4 and 8; presence/api/health.h HttpLimits).
  std::uint32_t max_connections = 256;
  std::uint32_t max_body_bytes = 64 * 1024;
  Duration idle_timeout{std::chrono::seconds(5)};
  // Optional second listener for /healthz, /readyz and /metrics only, with threads of its own:
  // a liveness probe there is answered whatever clients do to http.listen. "" = none.
  std::string health_listen;
};

// ---------------------------------------------------------------------------------------------
// ha: the active/standby pair on etcd (issue 13, docs/ha.md). No endpoints = single, as before.
struct HaConfig {
  std::vector<std::string> endpoints;     // etcd client URLs, e.g. http://127.0.0.1:2379
  std::string name;                       // this instance; unique in the pair (required)
  std::string key_prefix = "/presenced/";  // one pair per prefix
  Duration lease_ttl{std::chrono::seconds(10)};
  Duration fail_open_after{std::chrono::seconds(20)};  // etcd unreachable this long: send anyway
  Duration peer_down_after{std::chrono::seconds(30)};  // peer gone this long: page
  bool enabled() const { return !endpoints.empty(); }
};

// ---------------------------------------------------------------------------------------------
// emqx_api: start-up reconciliation through EMQX's clients REST API (issue 14; docs/topics.md).
// Empty url = off. An API key made in EMQX's dashboard (System -> API Keys) is the basic-auth pair.
struct EmqxApiConfig {
  std::string url;         // e.g. http://127.0.0.1:18083
  std::string api_key;
  std::string api_secret;
  std::uint32_t page_size = 1000;
  Duration timeout{std::chrono::seconds(5)};
};

// ---------------------------------------------------------------------------------------------
// store: snapshots of state and open incidents.
struct StoreConfig {
  std::string dir = "/var/lib/presenced";
  Duration snapshot_interval{std::chrono::seconds(30)};
};

// ---------------------------------------------------------------------------------------------
// alerts: sinks, policy, routing, silences.
struct PagerDutyConfig {
  bool enabled = false;
  std::string url = "https://events.pagerduty.com/v2/enqueue";
  std::string routing_key;  // required when enabled
  // The Events API allows about 120 events per minute per routing key (issue 18): at most
  // rate_limit_events requests in any rate_limit_window, per routing key; 429 is honoured too.
  std::uint32_t rate_limit_events = 120;
  Duration rate_limit_window{std::chrono::minutes(1)};
  // Context that is not a page (broker restart, presenced restart, silence started/ended, an
  // incident that healed before it paged) as change events on the same routing key.
  bool change_events = false;
  std::string change_url = "https://events.pagerduty.com/v2/change/enqueue";
};

// Prometheus Alertmanager (issue 18): every URL of an HA cluster gets every alert.
struct AlertmanagerConfig {
  bool enabled = false;
  std::vector<std::string> urls;  // base URLs (http://am:9093); /api/v2/alerts is appended
  // Firing alerts are re-sent this often; keep it well below Alertmanager's resolve_timeout (5m).
  Duration resend_interval{std::chrono::minutes(1)};
  Duration notify_for{std::chrono::minutes(5)};  // how long a context (info) alert lasts
};

// Microsoft Teams through a Workflows webhook (Adaptive Cards, issue 18).
struct TeamsConfig {
  bool enabled = false;
  std::string webhook_url;      // required when enabled (it carries a signature: secret)
  double max_per_second = 1.0;
};

struct SlackConfig {
  bool enabled = false;
  std::string webhook_url;      // required when enabled
  double max_per_second = 1.0;  // Slack webhooks allow about 1 message/s
};

struct WebhookConfig {
  bool enabled = false;
  std::string url;     // required when enabled
  std::string secret;  // HMAC-SHA256 signing secret; empty = unsigned
};

struct WatchdogConfig {
  std::string url;  // empty = no dead-man's-switch ping
  Duration interval{std::chrono::minutes(1)};
};

// Defaults come from the core's structs (core::PolicyConfig, core::FleetConfig), so each value
// exists once: the core documents and tests them (docs/alert-policy.md, "Parameters"), this file
// only names them in YAML. presence/app/alerting.cpp maps the section back onto those structs.
struct AlertPolicyConfig {
  // A device must stay Offline this long (after the core's offline decision, so offline_grace +
  // alert_after after the last sign of life) before it pages; it also gives the fleet monitor
  // time to hold the device in an incident (post-mortem 002).
  Duration alert_after = core::PolicyConfig{}.alert_after;
  // Alertmanager-style grouping: wait group_wait to collect related alerts into one
  // notification, then at most one update per group_interval.
  Duration group_wait = core::PolicyConfig{}.group_wait;
  Duration group_interval = core::PolicyConfig{}.group_interval;
  // presenced blind (no broker connection) this long pages once (a broker restart that
  // reconnects in seconds does not).
  Duration blind_alert_after = core::PolicyConfig{}.blind_alert_after;
  // A fleet/segment incident opens when, within incident_window, at least incident_open_floor
  // devices AND incident_open_fraction of the segment drop (post-mortem 003: one incident instead
  // of thousands of pages).
  Duration incident_window = core::FleetConfig{}.incident_window;
  std::uint32_t incident_open_floor = core::FleetThresholds{}.incident_open_floor;
  double incident_open_fraction = core::FleetThresholds{}.incident_open_fraction;  // (0, 1]
  // The incident resolves after the segment has been back this long.
  Duration incident_stable_for = core::FleetConfig{}.incident_stable_for;
  // Devices still offline this long after an incident resolved are paged as stragglers.
  Duration straggler_grace = core::FleetConfig{}.straggler_grace;
  // An incident also resolves once more than this share of the most devices it held down at once
  // are back, so the stuck rest is reported as stragglers (post-mortem 001). (0, 1].
  double incident_recovered_share = core::FleetThresholds{}.incident_recovered_share;
  // Reconnect storm (post-mortem 000: a tight-loop cohort): reconnects within incident_window
  // reach storm_open_floor AND storm_open_fraction of the segment AND storm_open_factor x its
  // learnt baseline; or storm_flapping_floor devices AND storm_flapping_fraction are flapping.
  std::uint32_t storm_open_floor = core::FleetThresholds{}.storm_open_floor;
  double storm_open_fraction = core::FleetThresholds{}.storm_open_fraction;  // (0, 1]
  double storm_open_factor = core::FleetThresholds{}.storm_open_factor;      // >= 1
  std::uint32_t storm_flapping_floor = core::FleetThresholds{}.storm_flapping_floor;
  double storm_flapping_fraction = core::FleetThresholds{}.storm_flapping_fraction;  // (0, 1]
  // Device ids listed in one group or straggler alert; the rest is counted (`count`), and the
  // API lists every one. PagerDuty caps an event at 512 KB.
  std::uint32_t details_max_devices = static_cast<std::uint32_t>(core::PolicyConfig{}.details_max_devices);
  // Parents and children (issue 15, docs/core.md "Parents and children"): the label naming a
  // device's parent ("" = none), and how long a returned parent's children have to come back
  // before they are paged as its stragglers.
  std::string parent_label = core::PolicyConfig{}.parent_label;
  Duration parent_return_grace = core::PolicyConfig{}.parent_return_grace;
};

using LabelMatch = std::map<std::string, std::string>;  // label -> value; all must match

struct AlertRouteConfig {
  LabelMatch match;
  std::string severity = "error";     // critical | error | warning | info
  std::string pagerduty_routing_key;  // empty = alerts.pagerduty.routing_key
  std::string slack_webhook_url;      // empty = alerts.slack.webhook_url
};

struct SilenceConfig {
  LabelMatch match;
  WallTime starts{};  // ISO 8601, e.g. 2026-11-21T12:00:00Z
  WallTime ends{};    // must be after starts
  std::string comment;
};

struct AlertsConfig {
  bool enabled = true;  // false: decide and record, but send nothing
  PagerDutyConfig pagerduty;
  SlackConfig slack;
  WebhookConfig webhook;
  AlertmanagerConfig alertmanager;
  TeamsConfig teams;
  // Where links in notifications point (Alertmanager generatorURL, Teams button, PagerDuty change
  // event link): the dashboard as the on-call reaches it, e.g. https://presenced.example.com.
  std::string dashboard_url;
  WatchdogConfig watchdog;
  AlertPolicyConfig policy;
  std::vector<AlertRouteConfig> routes;  // first match wins
  std::vector<SilenceConfig> silences;
};

// ---------------------------------------------------------------------------------------------
// log
// The one LogLevel and its words: presence/common/log.h.
using LogLevel = common::LogLevel;

struct LogConfig {
  LogLevel level = LogLevel::Info;
  // At most one line per log key (e.g. "malformed payload from <id>") per rate_limit; the rest
  // is counted. Keeps a misbehaving fleet from filling the disk.
  Duration rate_limit{std::chrono::seconds(10)};
};

// ---------------------------------------------------------------------------------------------
// mode: "presence" (debounced, hysteretic, grouped) or "naive" (page on every last-will, resolve
// on every birth: the baseline the scenario scorecard compares against).
enum class Mode { presence, naive };

// Sparkplug B 3.0 (issue 15, docs/sparkplug.md): the struct the MQTT link takes, key for key.
using SparkplugConfig = ingest::SparkplugConfig;

struct Config {
  MqttConfig mqtt;
  SparkplugConfig sparkplug;
  TopicsConfig topics;
  std::vector<SourceConfig> sources;
  std::vector<DeviceClassConfig> device_classes;
  OutputConfig output;
  core::Config presence;
  HttpConfig http;
  StoreConfig store;
  AlertsConfig alerts;
  LogConfig log;
  core::OverloadConfig overload;  // overload: (issue 16)
  HaConfig ha;
  EmqxApiConfig emqx_api;
  Mode mode = Mode::presence;
};

// ---------------------------------------------------------------------------------------------
// Loading

struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 = no position (e.g. the file cannot be read)
  std::string key;  // full dotted path, e.g. "alerts.routes[1].severity"; empty = whole file
  std::string reason;
};

// "file:line: key: reason" (": key" left out when key is empty, ":line" when line is 0).
std::string to_string(const ConfigError& error);

struct LoadResult {
  std::optional<Config> config;     // set only when errors is empty
  std::vector<ConfigError> errors;  // every error found, in file order
  bool ok() const { return errors.empty(); }
};

// Environment lookup for ${VAR} substitution; nullopt = unset. Injectable for tests.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
std::optional<std::string> real_env(std::string_view name);

// Load and validate. An empty file gives all defaults.
LoadResult load_config_file(const std::string& path, const EnvLookup& env = real_env);
LoadResult load_config_string(std::string_view text, const std::string& name,
                              const EnvLookup& env = real_env);
// Shorthand for load_config_file.
inline LoadResult load_config(const std::string& path, const EnvLookup& env = real_env) {
  return load_config_file(path, env);
}

// Reload (SIGHUP): which keys differ between the running and the new config, and which of those
// only take effect after a restart. The app applies `changed` minus `restart_required` and logs
// restart_required; it keeps running on the old config when the new file has errors.
struct ConfigDiff {
  std::vector<std::string> changed;           // dotted keys, e.g. "presence.offline_grace"
  std::vector<std::string> restart_required;  // subset of changed
  bool empty() const { return changed.empty(); }
};
ConfigDiff diff_config(const Config& running, const Config& next);
// True when a change of this dotted key only takes effect after a restart (see
// docs/configuration.md for the list and why).
bool requires_restart(std::string_view key);

// Every key with its effective value, in file order (e.g. {"mqtt.keepalive", "30s"}). Secrets
// (password, token, routing keys, webhook URLs and secrets) are shown as "<hidden>" when
// hide_secrets is set. Used by `presenced --check-config` and the reload log.
std::vector<std::pair<std::string, std::string>> flatten_config(const Config& config,
                                                                bool hide_secrets = true);

// The config to run with after a reload: `next` for every key that can change at run time, the
// running value for every key that requires a restart.
Config apply_reloadable(const Config& running, const Config& next);

struct ReloadResult {
  LoadResult load;                 // load.config is the new file's config when load.ok()
  ConfigDiff diff;                 // running -> new file; empty when load failed
  std::optional<Config> to_apply;  // apply_reloadable(running, new); unset when load failed
};
ReloadResult reload_config(const Config& running, const std::string& path,
                           const EnvLookup& env = real_env);

// `presenced --check-config FILE`: writes every error to `err` (one `file:line: key: reason` per
// line) and returns 2, or writes "FILE: OK" and the effective config (secrets hidden) to `out`
// and returns 0.
int check_config(const std::string& path, std::ostream& out, std::ostream& err,
                 const EnvLookup& env = real_env);

// ---------------------------------------------------------------------------------------------
// Building blocks, exposed for the other rooms and tests.

// "250ms", "30s", "5m", "1h", "1d", combinations "1m30s", "1h30m"; "0" or "0s" = zero.
std::optional<Duration> parse_duration(std::string_view text);
using core::format_duration;  // inverse: 90000ms -> "1m30s" (presence/core/time.h)

// http.listen and http.health_listen: "host:port" or "[v6]:port" (port 0 = any free port), and
// whether the host is a loopback address (127.0.0.0/8, ::1, localhost): off loopback the API
// needs a token. One parser for the loader's check and presenced's listeners.
struct Listen {
  std::string host;  // without the brackets of a v6 address
  int port = 0;
  bool loopback = false;
};
std::optional<Listen> parse_listen(std::string_view text);

// "512", "64KiB", "10MiB", "1GiB" (also KB/MB/GB = powers of 1000). Bytes.
std::optional<std::uint64_t> parse_size(std::string_view text);

// The file's topics (topics.*: one pattern per key, broker_ext as a prefix of six topics) and
// device classes as the ingest compiler takes them (presence/ingest/topics.h). The loader compiles
// them with the sources (errors at topics.<key> / sources[i].<key>), so a file that loads is one
// presenced can subscribe with.
ingest::TopicOptions topic_options(const Config& config);
std::vector<ingest::DeviceClassSpec> device_class_specs(const Config& config);

// Topic pattern check; returns the reason it is bad, or nullopt when fine. require_id: the
// pattern must contain exactly one {id} (or {id+}) as a whole level; otherwise {id} must be
// absent. It is ingest::TopicPattern::compile's rule (one rule: issue 14), reason only.
std::optional<std::string> validate_topic_pattern(std::string_view pattern, bool require_id);

// ${VAR} / ${VAR:-default} substitution in one scalar; "$${" is a literal "${". Returns the
// error reason on failure (unset variable without default, unterminated ${).
struct Substituted {
  std::string value;
  std::optional<std::string> error;
};
Substituted substitute_env(std::string_view text, const EnvLookup& env);

const char* to_string(MqttProtocol);
const char* to_string(Mode);

// alerts.policy / alerts.routes -> the core's configs, pure (config_policy.cpp; tested in
// test/unit/app/alerting_mapping_test.cpp). The loader checks what these give against
// core::policy_problems / core::fleet_problems (issue 12: one config truth), so a file that loads
// is one the core accepts. Routes: alerts.routes[i] becomes core AlertRule{match, severity, route
// route_name(i)}; alerts no route matches have route "" and go to the sinks' own destination.
core::PolicyConfig policy_config(const Config& config);
core::FleetConfig fleet_config(const Config& config);
std::string route_name(std::size_t i);  // "route<i>"

}  // namespace presence::app
