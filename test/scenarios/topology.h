// Broker topology of a scenario run (issue 6, storm benchmark): one mosquitto, or two bridged
// ones, each with broker-ext, and the broker-ext options (storm protection) the run uses.
//
// Two brokers exist because one process cannot hold 20,000 clients on a host whose hard
// open-file limit is 20,000 (docs/benchmarks.md): broker `b` is bridged into broker `a` (a
// node pair), presenced subscribes to `a` only. Mosquitto does not let a bridge publish into the
// remote broker's `$SYS` tree (2.0.11 drops it), so with two brokers broker-ext publishes under
// `kBridgedPrefix` on both nodes and presenced's `topics.broker_ext` is set to the same.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace presence::scenario {

inline constexpr const char* kBridgedPrefix = "nodes/{node}/presence";

struct BrokerSetup {
  int brokers = 1;  // 1, or 2 (b bridged into a)
  // plugin_opt_<key> <value> lines for every broker, in order (without node/topic_prefix/basic_auth,
  // which the driver sets).
  std::vector<std::pair<std::string, std::string>> broker_ext;
  bool storm_protection = false;  // the `storm_protection` map was applied
  bool naive = true;              // also run presenced in naive mode
};

// From the scenario file's top level and its --scale section (the section wins):
//   brokers: 1|2, naive: true|false, broker_ext: {key: value}, storm_protection: {key: value}
// storm_protection is merged into broker_ext when `protection` is "on" or "" (default: on when
// the map is there), left out when "off". `cli` are --broker-ext-opt KEY=VALUE overrides (last
// wins). Throws std::runtime_error naming the key on anything else.
BrokerSetup parse_broker_setup(const YAML::Node& file, const YAML::Node& scale, const std::string& protection,
                               const std::vector<std::string>& cli);

struct BrokerConf {
  std::string node;     // broker-ext node name: "n1" (one broker), "a", "b"
  int port = 0;
  std::string dir;      // persistence location (must end with '/')
  std::string plugin;   // empty: no broker-ext
  int bridge_to_port = 0;  // > 0: bridge devices/# and the broker-ext prefix out to this port
};

// The mosquitto.conf text of one broker of the run.
std::string mosquitto_conf(const BrokerConf& b, const BrokerSetup& s);

}  // namespace presence::scenario
