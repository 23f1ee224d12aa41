// Tests presence/ingest/source.* and presets.* (issue 14): every preset on its ecosystem's real
// topics and payloads, custom sources (words, JSON paths, label levels, static labels), device
// classes by source and by label, and configuration errors. Pure: no broker, no clock.
#include "presence/ingest/source.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "presence/ingest/presets.h"
#include "presence/ingest/topics.h"

using namespace presence::ingest;
using presence::core::DisconnectReason;
using presence::core::EventKind;

namespace {

struct Fleet {
  TopicMatcher matcher;
  SourceTable table;
  std::vector<DeviceClassSpec> classes;
  ParseLimits limits;

  explicit Fleet(std::vector<SourceSpec> sources, std::vector<DeviceClassSpec> cls = {},
                 bool keep_topics = false) {
    TopicOptions topics;
    if (!keep_topics) {
      topics = TopicOptions{};
      topics.status.clear();
      topics.heartbeat.clear();
    }
    classes = effective_device_classes(sources, cls);
    std::vector<std::string> errors;
    const bool ok = compile_ingest(topics, sources, classes, matcher, table, errors);
    std::string all;
    for (const auto& e : errors) all += e + "\n";
    REQUIRE_MESSAGE(ok, all);
  }
  Parsed parse(const std::string& topic, const std::string& payload, bool retained = false) const {
    return parse_message(matcher, topic, payload, retained, limits, &table);
  }
  std::vector<std::string> filters() const { return matcher.filters(); }
};

SourceSpec preset(const char* name) {
  SourceSpec s;
  s.preset = name;
  return s;
}

std::string label(const Parsed& p, const std::string& key) {
  for (const auto& [k, v] : p.labels)
    if (k == key) return v;
  return "<none>";
}

std::vector<std::string> compile_errors(std::vector<SourceSpec> sources,
                                        std::vector<DeviceClassSpec> classes = {}) {
  TopicOptions topics;
  TopicMatcher matcher;
  SourceTable table;
  std::vector<std::string> errors;
  compile_ingest(topics, sources, classes, matcher, table, errors);
  return errors;
}

}  // namespace

TEST_CASE("preset names, in documentation order") {
  const std::vector<std::string_view> want{"homeassistant", "tasmota", "esphome",
                                           "zigbee2mqtt",   "homie",   "generic"};
  CHECK(preset_names() == want);
  for (auto n : want) CHECK(find_preset(n) != nullptr);
  CHECK(find_preset("shelly") == nullptr);
}

TEST_CASE("tasmota: LWT Online/Offline, STATE is a heartbeat") {
  Fleet f({preset("tasmota")});
  const auto filters = f.filters();
  CHECK(std::count(filters.begin(), filters.end(), "tele/+/LWT") == 1);
  CHECK(std::count(filters.begin(), filters.end(), "tele/+/STATE") == 1);
  CHECK(std::count(filters.begin(), filters.end(), "devices/+/status") == 0);
  auto p = f.parse("tele/tasmota_9CF9D1/LWT", "Online", true);
  CHECK(p.what == Parsed::What::DeviceResync);  // a retained birth only introduces the device
  CHECK(p.kind == EventKind::Connected);
  CHECK(p.id == "tasmota_9CF9D1");
  p = f.parse("tele/tasmota_9CF9D1/LWT", "Offline");
  CHECK(p.what == Parsed::What::DeviceEvent);
  CHECK(p.kind == EventKind::Disconnected);
  CHECK(p.reason == DisconnectReason::LastWill);
  p = f.parse("tele/tasmota_9CF9D1/STATE",
              R"({"Time":"2024-02-24T22:20:38","Uptime":"0T00:10:11","UptimeSec":611,"POWER":"OFF"})");
  CHECK(p.what == Parsed::What::DeviceEvent);
  CHECK(p.kind == EventKind::Heartbeat);
  CHECK(p.error == ParseError::None);
  // A word Tasmota never sends is counted, not guessed.
  p = f.parse("tele/tasmota_9CF9D1/LWT", "Maybe");
  CHECK(p.what == Parsed::What::Reject);
  CHECK(p.error == ParseError::BadPayload);
}

TEST_CASE("esphome and homeassistant: online/offline on their status topics") {
  Fleet f({preset("esphome"), preset("homeassistant")});
  auto p = f.parse("livingroom/status", "online");
  CHECK(p.kind == EventKind::Connected);
  CHECK(p.id == "livingroom");
  p = f.parse("livingroom/status", "offline");
  CHECK(p.kind == EventKind::Disconnected);
  p = f.parse("plug-3/availability", "online");
  CHECK(p.kind == EventKind::Connected);
  CHECK(p.id == "plug-3");
}

TEST_CASE("zigbee2mqtt: JSON availability, names with '/', the bridge, commands ignored") {
  Fleet f({preset("zigbee2mqtt")});
  REQUIRE(f.classes.size() == 1);
  CHECK(f.classes[0].timeouts.name == "zigbee2mqtt");
  auto p = f.parse("zigbee2mqtt/living room/lamp/availability", R"({"state":"online"})");
  CHECK(p.what == Parsed::What::DeviceEvent);
  CHECK(p.kind == EventKind::Connected);
  CHECK(p.id == "living room/lamp");
  CHECK(p.device_class == 1);
  p = f.parse("zigbee2mqtt/living room/lamp/availability", R"({"state":"offline"})");
  CHECK(p.kind == EventKind::Disconnected);
  // Before 1.35: plain words.
  p = f.parse("zigbee2mqtt/kitchen/availability", "offline");
  CHECK(p.kind == EventKind::Disconnected);
  p = f.parse("zigbee2mqtt/bridge/state", R"({"state":"online"})");
  CHECK(p.what == Parsed::What::DeviceEvent);
  CHECK(p.id == "zigbee2mqtt");
  // Device messages are heartbeats; the bridge's other topics and commands are not devices.
  p = f.parse("zigbee2mqtt/living room/lamp", R"({"state":"ON","brightness":254,"linkquality":87})");
  CHECK(p.kind == EventKind::Heartbeat);
  CHECK(p.id == "living room/lamp");
  CHECK(p.device_class == 1);
  for (const char* t : {"zigbee2mqtt/bridge/logging", "zigbee2mqtt/bridge/devices",
                        "zigbee2mqtt/living room/lamp/set", "zigbee2mqtt/lamp/set/state",
                        "zigbee2mqtt/lamp/get"}) {
    INFO(t);
    p = f.parse(t, "{}");
    CHECK(p.what == Parsed::What::Ignore);
    CHECK(p.error == ParseError::None);
  }
  p = f.parse("zigbee2mqtt/kitchen/availability", R"({"status":"online"})");
  CHECK(p.error == ParseError::BadPayload);
}

TEST_CASE("homie: $state words; sleeping is up and asleep, init says nothing") {
  Fleet f({preset("homie")});
  auto p = f.parse("homie/thermo-1/$state", "ready");
  CHECK(p.kind == EventKind::Connected);
  CHECK_FALSE(p.asleep);
  CHECK(p.id == "thermo-1");
  p = f.parse("homie/thermo-1/$state", "alert");
  CHECK(p.kind == EventKind::Connected);
  p = f.parse("homie/thermo-1/$state", "sleeping");
  CHECK(p.what == Parsed::What::DeviceEvent);
  CHECK(p.kind == EventKind::Connected);
  CHECK(p.asleep);
  p = f.parse("homie/thermo-1/$state", "lost");
  CHECK(p.kind == EventKind::Disconnected);
  CHECK(p.reason == DisconnectReason::LastWill);
  p = f.parse("homie/thermo-1/$state", "disconnected");
  CHECK(p.kind == EventKind::Disconnected);
  CHECK(p.reason == DisconnectReason::Graceful);
  p = f.parse("homie/thermo-1/$state", "init");
  CHECK(p.what == Parsed::What::Ignore);
  CHECK(p.error == ParseError::None);
}

TEST_CASE("generic: today's payloads, labels from the JSON birth") {
  Fleet f({preset("generic")});
  auto p = f.parse("devices/d1/status", R"({"state":"online","firmware":"1.2","labels":{"site":"b"}})");
  CHECK(p.kind == EventKind::Connected);
  CHECK(label(p, "firmware") == "1.2");
  CHECK(label(p, "site") == "b");
  p = f.parse("devices/d1/heartbeat", "1");
  CHECK(p.kind == EventKind::Heartbeat);
}

TEST_CASE("a custom source: JSON path, own words, label paths, {site}, static labels") {
  SourceSpec s;
  s.name = "plant";
  s.status = {"plant/{site}/{id}/state"};
  s.heartbeat = {"plant/{site}/{id}/hb"};
  s.state_path = "conn.status";
  s.online = {"UP"};
  s.offline = {"down"};
  s.sleeping = {"parked"};
  s.labels = {{"ecosystem", "plc"}};
  s.label_paths = {{"firmware", "info.fw"}};
  Fleet f({s});
  auto p = f.parse("plant/berlin/press-1/state", R"({"conn":{"status":"up"},"info":{"fw":"7.1"}})");
  CHECK(p.kind == EventKind::Connected);
  CHECK(p.id == "press-1");
  CHECK(label(p, "site") == "berlin");
  CHECK(label(p, "ecosystem") == "plc");
  CHECK(label(p, "firmware") == "7.1");
  p = f.parse("plant/berlin/press-1/state", R"({"conn":{"status":"parked"}})");
  CHECK(p.asleep);
  p = f.parse("plant/berlin/press-1/hb", R"({"info":{"fw":"7.2"}})");
  CHECK(p.kind == EventKind::Heartbeat);
  CHECK(label(p, "firmware") == "7.2");
  CHECK(label(p, "site") == "berlin");
  p = f.parse("plant/berlin/press-1/hb", "not json");  // still proof of life
  CHECK(p.kind == EventKind::Heartbeat);
  p = f.parse("plant/berlin/press-1/state", R"({"conn":{}})");
  CHECK(p.error == ParseError::BadPayload);
  p = f.parse("plant/berlin/press-1/state", R"({"conn":)");
  CHECK(p.error == ParseError::BadJson);
}

TEST_CASE("a preset with overrides: topics replaced, words replaced as one map, labels added") {
  SourceSpec s = preset("tasmota");
  s.status = {"site-a/tele/{id}/LWT"};
  s.labels = {{"site", "a"}};
  const auto e = expand_preset(s, nullptr);
  REQUIRE(e);
  CHECK(e->status == std::vector<std::string>{"site-a/tele/{id}/LWT"});
  CHECK(e->heartbeat == std::vector<std::string>{"tele/{id}/STATE"});
  CHECK(e->online == std::vector<std::string>{"Online"});
  s.online = {"up"};
  const auto w = expand_preset(s, nullptr);
  REQUIRE(w);
  CHECK(w->online == std::vector<std::string>{"up"});
  CHECK(w->offline.empty());
}

TEST_CASE("device classes by label: the first class whose labels all match") {
  SourceSpec s;
  s.status = {"d/{id}/s"};
  s.state_path = "state";
  s.online = {"online"};
  s.offline = {"offline"};
  s.label_paths = {{"power", "power"}};
  DeviceClassSpec battery;
  battery.timeouts.name = "battery";
  battery.match = {{"power", "battery"}};
  DeviceClassSpec mains;
  mains.timeouts.name = "mains";
  mains.match = {{"power", "mains"}};
  Fleet f({s}, {battery, mains});
  CHECK(f.parse("d/x/s", R"({"state":"online","power":"battery"})").device_class == 1);
  CHECK(f.parse("d/x/s", R"({"state":"online","power":"mains"})").device_class == 2);
  CHECK(f.parse("d/x/s", R"({"state":"online"})").device_class == 0);  // no opinion
}

TEST_CASE("matching order: every status, then ignores, then heartbeats; topics.* first") {
  Fleet f({preset("zigbee2mqtt"), preset("tasmota")}, {}, /*keep_topics=*/true);
  std::vector<TopicKind> kinds;
  for (const auto& p : f.matcher.patterns()) kinds.push_back(p.kind());
  const auto first_heartbeat = std::find(kinds.begin(), kinds.end(), TopicKind::Heartbeat);
  CHECK(std::find(first_heartbeat, kinds.end(), TopicKind::Status) == kinds.end());
  CHECK(f.matcher.patterns()[0].pattern() == "devices/{id}/status");
  CHECK(f.parse("devices/d1/status", "online").kind == EventKind::Connected);
}

TEST_CASE("configuration errors name the source and key") {
  CHECK(compile_errors({preset("shelly")}) ==
        std::vector<std::string>{"sources[0].preset: unknown preset 'shelly' (known: "
                                 "homeassistant, tasmota, esphome, zigbee2mqtt, homie, generic)"});
  SourceSpec dup;
  dup.status = {"x/{id}"};
  dup.online = {"on"};
  dup.offline = {"ON"};
  CHECK(compile_errors({dup}) == std::vector<std::string>{
                                     "sources[0].offline: 'ON' already has another meaning in "
                                     "this source"});
  SourceSpec nowords;
  nowords.status = {"x/{id}"};
  CHECK(compile_errors({nowords}) ==
        std::vector<std::string>{
            "sources[0].online: a status topic needs its words (online, offline, ...)"});
  SourceSpec cls = preset("esphome");
  cls.device_class = "battery";
  CHECK(compile_errors({cls}) ==
        std::vector<std::string>{"sources[0].device_class: no device class named 'battery' "
                                 "(define it under device_classes)"});
  SourceSpec bad = preset("esphome");
  bad.status = {"{id}/st{x}"};
  const auto e = compile_errors({bad});
  REQUIRE(e.size() == 1);
  CHECK(e[0].rfind("sources[0].status[0]: topic pattern '{id}/st{x}': placeholders", 0) == 0);
  SourceSpec empty;
  CHECK(compile_errors({empty}) == std::vector<std::string>{
                                       "sources[0]: needs a preset or at least one status or "
                                       "heartbeat pattern"});
}

TEST_CASE("the mixed fleet's four presets side by side: each topic goes to its own source") {
  Fleet f({preset("tasmota"), preset("zigbee2mqtt"), preset("homie"), preset("generic")});
  CHECK(f.parse("devices/gen-3/heartbeat", "1").kind == EventKind::Heartbeat);
  CHECK(f.parse("devices/gen-3/heartbeat", "1").id == "gen-3");
  CHECK(f.parse("devices/gen-3/status", R"({"state":"online"})").kind == EventKind::Connected);
  CHECK(f.parse("tele/t1/STATE", "{}").kind == EventKind::Heartbeat);
  CHECK(f.parse("zigbee2mqtt/floor 1/lamp", "{}").id == "floor 1/lamp");
  CHECK(f.parse("homie/h/$state", "sleeping").asleep);
}
