// Every preset on a real mosquitto (issue 14): a real presenced configured only with
// `sources: [{preset: X}]`, devices speaking the ecosystem's own topics and words — a birth, a
// real last-will (mosquitto_sub killed with SIGKILL, so the broker publishes the will), and
// heartbeats where the ecosystem has them. Homie `sleeping` must not be offline; the mixed fleet
// (Tasmota + Zigbee2MQTT + Homie + generic) runs all of it at once in one presenced.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test/integration/ingest/will_device.h"
#include "test/integration/service/harness.h"
#include "test/support/mock_http.h"

using namespace presence::itest;
using presence::test::Mosquitto;
using presence::test::Process;

namespace {

// The sources section plus fast test timeouts; topics.* switched off so only the preset reads.
PresencedOptions with_sources(const std::string& sources) {
  PresencedOptions o;
  o.extra = "topics:\n  status: \"\"\n  heartbeat: \"\"\n" + sources;
  return o;
}

bool never(Observer& obs, const std::string& id, const std::string& state) {
  for (const auto& s : obs.history(id))
    if (s == state) return false;
  return true;
}


}  // namespace

TEST_CASE("preset tasmota: LWT birth, LWT will, STATE heartbeats and their silence") {
  Mosquitto broker;
  broker.start();
  Presenced presenced(broker.port(), with_sources("sources:\n  - preset: tasmota\n"));
  presenced.start();
  Observer obs(broker.uri());

  WillDevice plug(broker.port(), "tasmota_A1B2C3", "tele/tasmota_A1B2C3/LWT", "Offline");
  mqtt_pub(broker.port(), "tele/tasmota_A1B2C3/LWT", "Online", true);
  REQUIRE(obs.wait_state("tasmota_A1B2C3", "online", 15s));
  plug.crash();
  REQUIRE(obs.wait_state("tasmota_A1B2C3", "offline", 15s));

  // A device known only by its telemetry: online on STATE, offline when STATE stops.
  for (int i = 0; i < 4; ++i) {
    mqtt_pub(broker.port(), "tele/tasmota_D4E5F6/STATE", R"({"UptimeSec":611,"POWER":"OFF"})");
    std::this_thread::sleep_for(200ms);
  }
  REQUIRE(obs.wait_state("tasmota_D4E5F6", "online", 15s));
  REQUIRE(obs.wait_state("tasmota_D4E5F6", "offline", 20s));
  CHECK(presenced.metric("presence_parse_errors_total{kind=\"bad_payload\"}") == 0);
}

TEST_CASE("preset esphome and homeassistant: status online/offline, will on crash") {
  Mosquitto broker;
  broker.start();
  Presenced presenced(broker.port(),
                      with_sources("sources:\n  - preset: esphome\n  - preset: homeassistant\n"));
  presenced.start();
  Observer obs(broker.uri());
  WillDevice node(broker.port(), "livingroom", "livingroom/status", "offline");
  WillDevice plug(broker.port(), "plug-3", "plug-3/availability", "offline");
  mqtt_pub(broker.port(), "livingroom/status", "online", true);
  mqtt_pub(broker.port(), "plug-3/availability", "online", true);
  REQUIRE(obs.wait_state("livingroom", "online", 15s));
  REQUIRE(obs.wait_state("plug-3", "online", 15s));
  node.crash();
  plug.crash();
  REQUIRE(obs.wait_state("livingroom", "offline", 15s));
  REQUIRE(obs.wait_state("plug-3", "offline", 15s));
}

TEST_CASE("preset zigbee2mqtt: names with '/', JSON availability, bridge will, heartbeats") {
  Mosquitto broker;
  broker.start();
  // The built-in class (10 min .. 25 h) replaced by a test-sized one of the same name.
  Presenced presenced(
      broker.port(),
      with_sources("sources:\n  - preset: zigbee2mqtt\n"
                   "device_classes:\n  - name: zigbee2mqtt\n    heartbeat_timeout_floor: 1s\n"
                   "    heartbeat_timeout_ceiling: 2s\n"));
  presenced.start();
  Observer obs(broker.uri());
  // The bridge is the MQTT client; its will is zigbee2mqtt/bridge/state offline.
  WillDevice bridge(broker.port(), "zigbee2mqtt-bridge", "zigbee2mqtt/bridge/state",
                        R"({"state":"offline"})");
  mqtt_pub(broker.port(), "zigbee2mqtt/bridge/state", R"({"state":"online"})", true);
  mqtt_pub(broker.port(), "zigbee2mqtt/living room/lamp/availability", R"({"state":"online"})",
           true);
  REQUIRE(obs.wait_state("zigbee2mqtt", "online", 15s));
  REQUIRE(obs.wait_state("living room/lamp", "online", 15s));
  // Bridge chatter and commands are not devices.
  mqtt_pub(broker.port(), "zigbee2mqtt/bridge/logging", R"({"level":"info","message":"x"})");
  mqtt_pub(broker.port(), "zigbee2mqtt/living room/lamp/set", R"({"state":"ON"})");
  // Zigbee2MQTT itself says the lamp is gone (its availability check).
  mqtt_pub(broker.port(), "zigbee2mqtt/living room/lamp/availability", R"({"state":"offline"})",
           true);
  REQUIRE(obs.wait_state("living room/lamp", "offline", 15s));
  // A sensor known by its reports: judged by the class clock (2 s here).
  for (int i = 0; i < 4; ++i) {
    mqtt_pub(broker.port(), "zigbee2mqtt/garden/soil", R"({"battery":91,"soil_moisture":40})");
    std::this_thread::sleep_for(200ms);
  }
  REQUIRE(obs.wait_state("garden/soil", "online", 15s));
  CHECK(obs.latest("garden/soil")["labels"]["class"] == "zigbee2mqtt");
  REQUIRE(obs.wait_state("garden/soil", "offline", 20s));
  bridge.crash();
  REQUIRE(obs.wait_state("zigbee2mqtt", "offline", 15s));
  CHECK(obs.state("bridge/logging").empty());
  CHECK(obs.state("living room/lamp/set").empty());
  CHECK(presenced.metric("presence_parse_errors_total{kind=\"unknown_topic\"}") == 0);
}

TEST_CASE("preset homie: ready, lost by will; sleeping is never offline, never paged") {
  Mosquitto broker;
  broker.start();
  // A webhook receiver: "never paged" is checked on the pages themselves, against a device of
  // the same fleet that does get its page (so the check can fail).
  presence::test::MockHttpServer sink;
  PresencedOptions o = with_sources("sources:\n  - preset: homie\n");
  o.extra += "alerts:\n  webhook:\n    enabled: true\n    url: " + sink.url("/hook") +
             "\n  policy:\n    alert_after: 1s\n    group_wait: 500ms\n";
  Presenced presenced(broker.port(), o);
  presenced.start();
  Observer obs(broker.uri());
  WillDevice thermo(broker.port(), "thermo-1", "homie/thermo-1/$state", "lost");
  WillDevice sensor(broker.port(), "window-2", "homie/window-2/$state", "lost");
  mqtt_pub(broker.port(), "homie/thermo-1/$state", "init", true);
  mqtt_pub(broker.port(), "homie/thermo-1/$state", "ready", true);
  mqtt_pub(broker.port(), "homie/window-2/$state", "ready", true);
  REQUIRE(obs.wait_state("thermo-1", "online", 15s));
  REQUIRE(obs.wait_state("window-2", "online", 15s));
  // window-2 goes to sleep the Homie way: $state sleeping, then a clean disconnect (no will).
  mqtt_pub(broker.port(), "homie/window-2/$state", "sleeping", true);
  sensor.disconnect_cleanly();  // SIGTERM: mosquitto_sub disconnects cleanly, the will is not sent
  thermo.crash();
  REQUIRE(obs.wait_state("thermo-1", "offline", 15s));
  // Well past offline_grace (1 s) and the heartbeat floor (1 s): still online.
  std::this_thread::sleep_for(4s);
  CHECK(obs.state("window-2") == "online");
  CHECK(never(obs, "window-2", "suspect"));
  CHECK(never(obs, "window-2", "offline"));
  auto paged = [&](const std::string& id) {
    for (const auto& r : sink.requests())
      if (r.body.find(id) != std::string::npos) return true;
    return false;
  };
  CHECK(wait_for([&] { return paged("thermo-1"); }, 15s));  // the will is paged
  CHECK_FALSE(paged("window-2"));                            // sleeping is not
  mqtt_pub(broker.port(), "homie/window-2/$state", "ready", true);
  mqtt_pub(broker.port(), "homie/window-2/$state", "disconnected", true);
  REQUIRE(obs.wait_state("window-2", "offline", 15s));
  CHECK(presenced.metric("presence_parse_errors_total{kind=\"bad_payload\"}") == 0);
}

TEST_CASE("preset generic: today's topics and JSON labels through sources") {
  Mosquitto broker;
  broker.start();
  Presenced presenced(broker.port(), with_sources("sources:\n  - preset: generic\n"));
  presenced.start();
  Observer obs(broker.uri());
  WillDevice d(broker.port(), "gen-1", "devices/gen-1/status", "offline");
  mqtt_pub(broker.port(), "devices/gen-1/status", R"({"state":"online","site":"berlin"})", true);
  REQUIRE(obs.wait_state("gen-1", "online", 15s));
  CHECK(obs.latest("gen-1")["labels"]["site"] == "berlin");
  d.crash();
  REQUIRE(obs.wait_state("gen-1", "offline", 15s));
  for (int i = 0; i < 4; ++i) {
    mqtt_pub(broker.port(), "devices/gen-2/heartbeat", "1");
    std::this_thread::sleep_for(200ms);
  }
  REQUIRE(obs.wait_state("gen-2", "online", 15s));
  REQUIRE(obs.wait_state("gen-2", "offline", 20s));
}

TEST_CASE("a device's class survives a presenced restart (snapshot keeps the class label)") {
  // The class comes from the birth's labels (power: battery); heartbeats carry no labels. After a
  // restart, the first heartbeat must still be judged by the battery clock (ceiling 6 s until an
  // interval is known), not by the default one (30 min).
  Mosquitto broker;
  broker.start();
  Presenced presenced(
      broker.port(),
      with_sources("sources:\n  - name: sensors\n    status: [\"s/{id}/state\"]\n"
                   "    heartbeat: [\"s/{id}/hb\"]\n    state_path: state\n"
                   "    online: [online]\n    offline: [offline]\n"
                   "    label_paths: {power: power}\n"
                   "device_classes:\n  - name: battery\n    match: {power: battery}\n"
                   "    heartbeat_timeout_floor: 5s\n    heartbeat_timeout_ceiling: 6s\n"));
  presenced.start();
  Observer obs(broker.uri());
  auto timeout_ms = [&] {
    auto j = nlohmann::json::parse(presenced.body("/v1/devices/soil"), nullptr, false);
    return j.is_object() ? j.value("/heartbeat/timeout_ms"_json_pointer, 0) : 0;
  };
  // Not retained: nothing replays the labels after the restart, only the snapshot keeps them.
  mqtt_pub(broker.port(), "s/soil/state", R"({"state":"online","power":"battery"})");
  REQUIRE(obs.wait_state("soil", "online", 15s));
  CHECK(obs.latest("soil")["labels"]["class"] == "battery");
  REQUIRE(presenced.stop() == 0);
  presenced.start();
  mqtt_pub(broker.port(), "s/soil/hb", "1");
  CHECK_MESSAGE(wait_for([&] { return timeout_ms() == 6000; }, 10s),
                presenced.body("/v1/devices/soil"));
}
