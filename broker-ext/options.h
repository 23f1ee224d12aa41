// broker-ext options: every `plugin_opt_<key> <value>` line of mosquitto.conf, validated at load
// (STYLE.md habit 7: bad config fails fast and names the key). Unknown keys refuse to load, so a
// typo like `plugin_opt_conect_rate` cannot silently leave storm protection off.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace presence::broker_ext {

// How the plugin takes part in Mosquitto 2.0's MOSQ_EVT_BASIC_AUTH chain (docs/broker-ext.md,
// "Authentication"). There is no safe default: `defer` makes a broker that has no username check
// (no password_file, no auth plugin) with allow_anonymous true refuse clients that send a
// username, and `off` gives up connected events and storm protection. The operator must choose.
enum class BasicAuth { defer, off };

struct Options {
  std::string node;          // `node`: name in the topic prefix; default the host name
  std::string topic_prefix;  // `topic_prefix`: default "$SYS/presence/{node}", {node} replaced
  BasicAuth basic_auth = BasicAuth::defer;  // `basic_auth`: required, defer|off
  int qos = 1;                              // `qos`: QoS of published events, 0..2
  std::int64_t heartbeat_interval_ms = 1000;  // `heartbeat_interval`

  // Storm protection, off by default (issue 4). connect_rate 0 = no global token bucket.
  std::int64_t connect_rate = 0;   // `connect_rate`: admitted connects per second
  std::int64_t connect_burst = 0;  // `connect_burst`: bucket size; default = connect_rate
  // Per-client flap ban; flap_max_count 0 = off. EMQX's flapping detection is the reference
  // (15 connects in 1 min -> banned 5 min), see docs.
  std::int64_t flap_max_count = 0;       // `flap_max_count`
  std::int64_t flap_window_ms = 60000;   // `flap_window`
  std::int64_t flap_ban_ms = 300000;     // `flap_ban`
  std::int64_t flap_max_clients = 100000;  // `flap_max_clients`: bound on tracked client ids
  std::int64_t refusal_log_interval_ms = 10000;  // `refusal_log_interval`

  // Heartbeat aggregation (docs/broker-ext.md): off while heartbeat_topic is empty.
  std::string heartbeat_topic;          // `heartbeat_topic`: e.g. "devices/{id}/heartbeat"
  std::int64_t alive_interval_ms = 1000;  // `alive_interval`: 100..60000 ms
  std::int64_t alive_max_bytes = 32768;   // `alive_max_bytes`: 1024..60000

  bool aggregation() const { return !heartbeat_topic.empty(); }

  bool storm_protection() const { return connect_rate > 0 || flap_max_count > 0; }
};

struct ParseResult {
  std::optional<Options> options;   // set when there is no error
  std::vector<std::string> errors;  // one line per bad key, names the key
  std::vector<std::string> info;    // one line per effective option, logged at load
};

// key/value pairs as Mosquitto hands them (without the "plugin_opt_" prefix), in file order.
// default_node is the host name (the shim reads it; this stays pure).
ParseResult parse_options(const std::vector<std::pair<std::string, std::string>>& kv,
                          const std::string& default_node);

// "250ms", "1s", "5m", "1h" -> milliseconds. A bare number is an error: units are mandatory
// because "60" could mean seconds or milliseconds.
std::optional<std::int64_t> parse_duration_ms(const std::string& s);

}  // namespace presence::broker_ext
