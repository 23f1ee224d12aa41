// Shared bits of broker-ext's integration tests: a real mosquitto (test/support) loading the
// freshly built mosquitto_presence.so with given plugin_opt_* lines.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "mqtt_raw.h"
#include "test/support/process.h"

namespace presence::test::broker_ext {

inline std::string plugin_path() {
  return std::string(PRESENCE_BINARY_DIR) + "/broker-ext/mosquitto_presence.so";
}

// "plugin <so>" followed by one "plugin_opt_<kv>" line per entry ("basic_auth defer", ...).
inline std::string plugin_conf(const std::vector<std::string>& opts) {
  std::string s = "plugin " + plugin_path() + "\n";
  for (const auto& o : opts) s += "plugin_opt_" + o + "\n";
  return s;
}

inline constexpr const char* kPrefix = "$SYS/presence/itest";
inline constexpr const char* kFilter = "$SYS/presence/itest/#";

inline nlohmann::json body(const mqtt::Publish& p) { return nlohmann::json::parse(p.payload); }

// Client events (connected/disconnected) in arrival order, optionally for one client id.
inline std::vector<nlohmann::json> client_events(mqtt::Collector& c, const std::string& id = "") {
  std::vector<nlohmann::json> v;
  for (const auto& m : c.snapshot()) {
    if (m.topic.find("/clients/") == std::string::npos) continue;
    auto j = nlohmann::json::parse(m.payload);
    j["_kind"] = m.topic.substr(m.topic.rfind('/') + 1);
    j["_topic"] = m.topic;
    if (id.empty() || j["clientid"] == id) v.push_back(j);
  }
  return v;
}

// Latest heartbeat received so far (null json if none).
inline nlohmann::json last_heartbeat(mqtt::Collector& c) {
  nlohmann::json last;
  for (const auto& m : c.snapshot()) {
    if (m.topic.size() > 10 && m.topic.compare(m.topic.size() - 10, 10, "/heartbeat") == 0) {
      last = nlohmann::json::parse(m.payload);
    }
  }
  return last;
}

}  // namespace presence::test::broker_ext
