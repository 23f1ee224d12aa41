#include "test/scenarios/topology.h"

#include <map>
#include <stdexcept>

namespace presence::scenario {

namespace {

bool plain_word(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  for (unsigned char c : s)
    if (c <= ' ' || c == 0x7f) return false;  // one token on a mosquitto.conf line
  return true;
}

void set(std::vector<std::pair<std::string, std::string>>& kv, const std::string& key, const std::string& value,
         const std::string& where) {
  bool key_ok = !key.empty();
  for (char c : key) key_ok = key_ok && ((c >= 'a' && c <= 'z') || c == '_');
  if (!key_ok) throw std::runtime_error(where + ": bad broker-ext option name '" + key + "'");
  if (key == "node" || key == "topic_prefix" || key == "basic_auth")
    throw std::runtime_error(where + "." + key + ": set by presence-scenario, not by the scenario");
  if (!plain_word(value))
    throw std::runtime_error(where + "." + key + ": value must be one word without spaces");
  for (auto& [k, v] : kv) {
    if (k == key) {
      v = value;
      return;
    }
  }
  kv.emplace_back(key, value);
}

void apply_map(std::vector<std::pair<std::string, std::string>>& kv, const YAML::Node& m, const std::string& where) {
  if (!m || m.IsNull()) return;
  if (!m.IsMap()) throw std::runtime_error(where + ": must be a map of broker-ext options");
  for (const auto& e : m) {
    if (!e.second.IsScalar()) throw std::runtime_error(where + "." + e.first.as<std::string>() + ": must be a scalar");
    set(kv, e.first.as<std::string>(), e.second.as<std::string>(), where);
  }
}

// The key of the section, else of the file; a Null node when neither has it (yaml-cpp's default
// Node is a defined Null, so callers test IsNull()).
YAML::Node pick(const YAML::Node& file, const YAML::Node& scale, const char* key) {
  if (scale && scale.IsMap() && scale[key]) return scale[key];
  if (file && file.IsMap() && file[key]) return file[key];
  return YAML::Node(YAML::NodeType::Null);
}

}  // namespace

BrokerSetup parse_broker_setup(const YAML::Node& file, const YAML::Node& scale, const std::string& protection,
                               const std::vector<std::string>& cli) {
  BrokerSetup s;
  if (const YAML::Node b = pick(file, scale, "brokers"); !b.IsNull()) {
    const std::string v = b.IsScalar() ? b.as<std::string>() : "";
    if (v != "1" && v != "2") throw std::runtime_error("brokers: must be 1 or 2 (b bridged into a)");
    s.brokers = v == "2" ? 2 : 1;
  }
  if (const YAML::Node n = pick(file, scale, "naive"); !n.IsNull()) {
    const std::string v = n.IsScalar() ? n.as<std::string>() : "";
    if (v != "true" && v != "false") throw std::runtime_error("naive: must be true or false");
    s.naive = v == "true";
  }
  // Top level first, then the section: a section's key wins over the file's.
  if (file && file.IsMap()) apply_map(s.broker_ext, file["broker_ext"], "broker_ext");
  if (scale && scale.IsMap()) apply_map(s.broker_ext, scale["broker_ext"], "broker_ext");
  if (protection != "" && protection != "on" && protection != "off")
    throw std::runtime_error("--storm-protection: must be on or off");
  const YAML::Node storm = pick(file, scale, "storm_protection");
  if (protection == "on" && storm.IsNull())
    throw std::runtime_error("--storm-protection on: the scenario has no storm_protection map");
  if (!storm.IsNull() && protection != "off") {
    apply_map(s.broker_ext, storm, "storm_protection");
    s.storm_protection = true;
  }
  for (const auto& o : cli) {
    const auto eq = o.find('=');
    if (eq == std::string::npos) throw std::runtime_error("--broker-ext-opt '" + o + "': want KEY=VALUE");
    set(s.broker_ext, o.substr(0, eq), o.substr(eq + 1), "--broker-ext-opt");
  }
  return s;
}

std::string mosquitto_conf(const BrokerConf& b, const BrokerSetup& s) {
  std::string c = "listener " + std::to_string(b.port) + " 127.0.0.1\nallow_anonymous true\n";
  // As config/mosquitto.conf: retained births and presenced's persistent session survive a
  // broker restart (scenario 1), so presenced must not trust a stale retained "online".
  c += "persistence true\npersistence_location " + b.dir + "\n";
  // presenced's persistent session queues last-wills while it restarts (scenario 3); the default
  // of 1000 queued messages would drop some of a fleet's wills. Also the bridge's queue.
  c += "max_queued_messages 0\nset_tcp_nodelay true\n";
  if (!b.plugin.empty()) {
    c += "plugin " + b.plugin + "\nplugin_opt_basic_auth defer\nplugin_opt_node " + b.node + "\n";
    if (s.brokers > 1) c += std::string("plugin_opt_topic_prefix ") + kBridgedPrefix + "\n";
    for (const auto& [k, v] : s.broker_ext) c += "plugin_opt_" + k + " " + v + "\n";
  }
  if (b.bridge_to_port > 0) {
    // A node pair: this broker's devices and broker-ext events reach presenced on the other one.
    // Loop prevention (try_private) is on by default between two mosquittos.
    c += "connection " + b.node + "-to-a\naddress 127.0.0.1:" + std::to_string(b.bridge_to_port) + "\n";
    c += "remote_clientid bridge-" + b.node + "\ncleansession true\nrestart_timeout 1 5\n";
    c += "bridge_protocol_version mqttv311\n";
    c += "topic devices/# out 1\n";
    c += "topic nodes/# out 1\n";
  }
  return c;
}

}  // namespace presence::scenario
