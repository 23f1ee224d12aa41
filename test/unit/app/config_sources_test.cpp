// The config side of issue 14: `sources` and `device_classes` read from YAML, their errors with
// file:line, and ONE rule for topic patterns: the loader's verdict on a pattern is exactly what
// ingest::TopicPattern::compile says (it used to reject '+' and '#', which the compiler accepts
// and docs/topics.md allows).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "presence/app/config.h"
#include "presence/ingest/topic_pattern.h"

using namespace presence::app;
using presence::ingest::TopicKind;
using presence::ingest::TopicPattern;

namespace {

LoadResult load(const std::string& text) {
  return load_config_string(text, "c.yaml", [](std::string_view) { return std::nullopt; });
}

std::vector<std::string> errors(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& e : load(text).errors) out.push_back(to_string(e));
  return out;
}

}  // namespace

TEST_CASE("one rule: the loader accepts and rejects exactly what the ingest compiler does") {
  const char* corpus[] = {
      "devices/{id}/status", "{id}", "devices/+/{id}", "devices/{id}/#", "site/+/{id}/hb/#",
      "zigbee2mqtt/{id+}/availability", "zigbee2mqtt/{id+}", "plant/{site}/{id}/state",
      "$SYS/brokers/{node}/clients/{id}/connected", "devices/status", "{id}/x/{id}",
      "devices/dev-{id}/status", "devices/{id}x", "a/{node}-x/{id}", "devices/{id/status",
      "devices/id}/status", "a/#/{id}", "a/{id+}/#", "{node}/{node}/{id}", "{s}/{s}/{id}",
      "{a}/{b}/{c}/{d}/{e}/{id}", "$SYS/broker/uptime", "$SYS/presence/{node}",
      "$SYS/presence/{id}", "a//{id}", "+/{id}/status", "devices/{1x}/{id}"};
  for (const char* p : corpus) {
    for (const bool require_id : {true, false}) {
      INFO(p << " require_id=" << require_id);
      std::string error;
      const auto compiled = TopicPattern::compile(
          require_id ? TopicKind::Status : TopicKind::Uptime, p, &error);
      const auto verdict = validate_topic_pattern(p, require_id);
      CHECK(compiled.has_value() == !verdict.has_value());
      if (verdict) CHECK(error == "topic pattern '" + std::string(p) + "': " + *verdict);
    }
  }
}

TEST_CASE("topics.status with '+' loads (docs/topics.md allows it)") {
  CHECK(errors("topics:\n  status: site/+/{id}/status\n").empty());
  CHECK(errors("topics:\n  status: zigbee2mqtt/{id+}/availability\n").empty());
}

TEST_CASE("sources and device_classes are read, with every key") {
  const auto r = load(R"(topics:
  status: ""
  heartbeat: ""
sources:
  - preset: tasmota
    labels: {ecosystem: tasmota}
  - name: plant
    status: ["plant/{site}/{id}/state"]
    heartbeat: ["plant/{site}/{id}/hb"]
    ignore: ["plant/{site}/{id}/cmd"]
    state_path: conn.status
    online: [up]
    offline: [down]
    graceful: [bye]
    sleeping: [parked]
    other: [booting]
    label_paths: {firmware: info.fw}
    device_class: battery
device_classes:
  - name: battery
    match: {power: battery}
    heartbeat_timeout_floor: 1h
    heartbeat_timeout_ceiling: 25h
    offline_grace: 2m
)");
  REQUIRE(r.ok());
  const Config& c = *r.config;
  REQUIRE(c.sources.size() == 2);
  CHECK(c.sources[0].preset == "tasmota");
  CHECK(c.sources[0].labels.at("ecosystem") == "tasmota");
  const auto& s = c.sources[1];
  CHECK(s.name == "plant");
  CHECK(s.status == std::vector<std::string>{"plant/{site}/{id}/state"});
  CHECK(s.ignore == std::vector<std::string>{"plant/{site}/{id}/cmd"});
  CHECK(s.state_path == "conn.status");
  CHECK(s.graceful == std::vector<std::string>{"bye"});
  CHECK(s.sleeping == std::vector<std::string>{"parked"});
  CHECK(s.other == std::vector<std::string>{"booting"});
  CHECK(s.label_paths.at("firmware") == "info.fw");
  CHECK(s.device_class == "battery");
  REQUIRE(c.device_classes.size() == 1);
  CHECK(c.device_classes[0].match.at("power") == "battery");
  CHECK(c.device_classes[0].heartbeat_timeout_floor == std::chrono::hours(1));
  CHECK(c.device_classes[0].heartbeat_timeout_ceiling == std::chrono::hours(25));
  CHECK(c.device_classes[0].offline_grace == std::chrono::minutes(2));
  CHECK(requires_restart("sources[0].status"));
  CHECK(requires_restart("device_classes[0].offline_grace"));
}

TEST_CASE("source and class errors carry file:line and the key") {
  CHECK(errors("sources:\n  - preset: shelly\n") ==
        std::vector<std::string>{"c.yaml:2: sources[0].preset: unknown preset 'shelly' (known: "
                                 "homeassistant, tasmota, esphome, zigbee2mqtt, homie, generic)"});
  CHECK(errors("sources:\n  - name: x\n") ==
        std::vector<std::string>{
            "c.yaml:2: sources[0]: needs a preset or at least one status or heartbeat pattern"});
  CHECK(errors("sources:\n  - status: [\"a/{id\"]\n    online: [on]\n")[0].rfind(
            "c.yaml:2: sources[0].status[0]: placeholders and wildcards must be whole levels", 0) ==
        0);
  CHECK(errors("sources:\n  - preset: esphome\n    device_class: battery\n") ==
        std::vector<std::string>{"c.yaml:3: sources[0].device_class: no device class named "
                                 "'battery' (define it under device_classes)"});
  // zigbee2mqtt's class is built in.
  CHECK(errors("sources:\n  - preset: esphome\n    device_class: zigbee2mqtt\n").empty());
  CHECK(errors("device_classes:\n  - name: b\n    heartbeat_timeout_floor: 2h\n"
               "    heartbeat_timeout_ceiling: 1h\n") ==
        std::vector<std::string>{"c.yaml:4: device_classes[0].heartbeat_timeout_ceiling: must be "
                                 "at least the class's heartbeat_timeout_floor (2h)"});
  CHECK(errors("device_classes:\n  - name: b\n  - name: b\n") ==
        std::vector<std::string>{"c.yaml:3: device_classes[1].name: class 'b' is defined twice"});
  CHECK(errors("sources:\n  - preset: x\n    bogus: 1\n").size() == 2);  // unknown key reported
  // topics.status may be empty only when sources are set.
  CHECK(errors("topics:\n  status: \"\"\n") ==
        std::vector<std::string>{"c.yaml:2: topics.status: must not be empty"});
  CHECK(errors("topics:\n  status: \"\"\nsources:\n  - preset: homie\n").empty());
}
