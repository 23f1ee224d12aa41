// A mixed fleet in one presenced (issue 14, "Must show"): Tasmota + Zigbee2MQTT + Homie + generic
// devices on one real mosquitto, each speaking its own convention, configured only by presets.
// Heartbeats flow from one Paho publisher; then one device of each kind really fails (a will, an
// availability "offline", heartbeats that stop) while a Homie device goes to sleep. Scored like a
// user would: exactly the failed devices end offline, and no healthy device was ever suspect.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test/integration/ingest/will_device.h"
#include "test/integration/service/harness.h"

using namespace presence::itest;
using presence::test::Mosquitto;
using presence::test::Process;

namespace {

// Publishes every device's heartbeat every 300 ms until stopped; `silenced` ones no longer.
class Heartbeats {
 public:
  Heartbeats(const std::string& uri, std::vector<std::pair<std::string, std::string>> beats)
      : client_(uri, "mixed-heartbeats-" + unique_suffix()), beats_(std::move(beats)) {
    client_.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
    thread_ = std::thread([this] { run(); });
  }
  ~Heartbeats() {
    stop_ = true;
    thread_.join();
    try {
      client_.disconnect()->wait_for(2s);
    } catch (...) {
    }
  }
  void silence(const std::string& topic) {
    std::lock_guard<std::mutex> lock(mu_);
    silenced_.insert(topic);
  }

 private:
  void run() {
    while (!stop_) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [topic, payload] : beats_) {
          if (silenced_.count(topic)) continue;
          try {
            client_.publish(topic, payload, 0, false);
          } catch (...) {
          }
        }
      }
      std::this_thread::sleep_for(300ms);
    }
  }
  mqtt::async_client client_;
  std::vector<std::pair<std::string, std::string>> beats_;
  std::mutex mu_;
  std::set<std::string> silenced_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("mixed fleet: Tasmota + Zigbee2MQTT + Homie + generic, one failure of each kind") {
  Mosquitto broker;
  broker.start();
  PresencedOptions o;
  o.heartbeat_timeout_floor = "3s";  // a loaded CI machine may delay a 300 ms beat by a second
  o.extra = R"(topics:
  status: ""
  heartbeat: ""
sources:
  - preset: tasmota
    labels: {ecosystem: tasmota}
  - preset: zigbee2mqtt
    labels: {ecosystem: zigbee}
  - preset: homie
    labels: {ecosystem: homie}
  - preset: generic
device_classes:
  - name: zigbee2mqtt
    heartbeat_timeout_floor: 3s
    heartbeat_timeout_ceiling: 6s
)";
  Presenced presenced(broker.port(), o);
  presenced.start();
  Observer obs(broker.uri());

  const std::vector<std::string> tasmota{"tasmota_1", "tasmota_2", "tasmota_3"};
  const std::vector<std::string> zigbee{"floor 1/plug", "floor 1/lamp", "garden/soil"};
  const std::vector<std::string> homie{"thermo-1", "window-2"};
  const std::vector<std::string> generic{"gen-1", "gen-2", "gen-3"};

  std::vector<std::unique_ptr<WillDevice>> wills;
  for (const auto& id : tasmota)
    wills.push_back(std::make_unique<WillDevice>(broker.port(), id, "tele/" + id + "/LWT", "Offline"));
  for (const auto& id : homie)
    wills.push_back(std::make_unique<WillDevice>(broker.port(), id, "homie/" + id + "/$state", "lost"));
  for (const auto& id : generic)
    wills.push_back(
        std::make_unique<WillDevice>(broker.port(), id, "devices/" + id + "/status", "offline"));

  for (const auto& id : tasmota) mqtt_pub(broker.port(), "tele/" + id + "/LWT", "Online", true);
  for (const auto& id : zigbee)
    mqtt_pub(broker.port(), "zigbee2mqtt/" + id + "/availability", R"({"state":"online"})", true);
  for (const auto& id : homie) mqtt_pub(broker.port(), "homie/" + id + "/$state", "ready", true);
  for (const auto& id : generic)
    mqtt_pub(broker.port(), "devices/" + id + "/status", R"({"state":"online","site":"hq"})", true);

  std::vector<std::pair<std::string, std::string>> beats;
  for (const auto& id : tasmota) beats.emplace_back("tele/" + id + "/STATE", R"({"UptimeSec":5})");
  for (const auto& id : zigbee) beats.emplace_back("zigbee2mqtt/" + id, R"({"linkquality":80})");
  for (const auto& id : generic) beats.emplace_back("devices/" + id + "/heartbeat", "1");
  Heartbeats hb(broker.uri(), beats);

  std::vector<std::string> all;
  for (const auto* group : {&tasmota, &zigbee, &homie, &generic})
    all.insert(all.end(), group->begin(), group->end());
  REQUIRE(wait_for([&] { return obs.count_in("online") == all.size(); }, 20s));
  CHECK(obs.latest("tasmota_1")["labels"]["ecosystem"] == "tasmota");
  CHECK(obs.latest("floor 1/plug")["labels"]["ecosystem"] == "zigbee");
  CHECK(obs.latest("gen-1")["labels"]["site"] == "hq");

  // Until a device has shown an interval, its class ceiling judges it (docs/core.md): wait until
  // the heartbeat devices have a learnt period, as a fleet that has been running would.
  REQUIRE(wait_for(
      [&] {
        for (const auto* group : {&tasmota, &generic})
          for (const auto& id : *group) {
            auto j = nlohmann::json::parse(presenced.body("/v1/devices/" + id), nullptr, false);
            if (j.is_discarded() || j.value("/heartbeat/mean_ms"_json_pointer, 0) == 0)
              return false;
          }
        return true;
      },
      20s, 200ms));

  // The failures: tasmota_2 loses power (will; its STATE stops too), Zigbee2MQTT declares
  // "floor 1/lamp" unavailable, gen-3 hangs (heartbeats stop, connection stays). window-2 sleeps.
  hb.silence("tele/tasmota_2/STATE");
  wills[1]->crash();
  hb.silence("zigbee2mqtt/floor 1/lamp");
  mqtt_pub(broker.port(), "zigbee2mqtt/floor 1/lamp/availability", R"({"state":"offline"})", true);
  hb.silence("devices/gen-3/heartbeat");
  mqtt_pub(broker.port(), "homie/window-2/$state", "sleeping", true);

  const std::set<std::string> failed{"tasmota_2", "floor 1/lamp", "gen-3"};
  const bool all_down = wait_for(
      [&] {
        for (const auto& id : failed)
          if (obs.state(id) != "offline") return false;
        return true;
      },
      20s);
  for (const auto& id : failed) INFO(id << ": " << obs.state(id));
  if (!all_down) {
    std::string states;
    for (const auto& id : failed) states += id + "=" + obs.state(id) + " ";
    FAIL("failed devices not all offline: " << states << "\n" << presenced.body("/v1/devices/gen-3")
                                             << "\n" << presenced.body("/v1/devices/gen-1")
                                             << "\n" << presenced.log());
  }
  // Let a few more heartbeat timeouts pass: nobody else may slip.
  std::this_thread::sleep_for(3s);
  for (const auto& id : all) {
    INFO(id);
    if (failed.count(id)) {
      CHECK(obs.state(id) == "offline");
      continue;
    }
    CHECK(obs.state(id) == "online");
    for (const auto& s : obs.history(id)) CHECK(s != "suspect");
  }
  CHECK(obs.state("window-2") == "online");  // asleep, not offline
  CHECK(presenced.metric("presence_devices{state=\"offline\"}") == 3);
  CHECK(presenced.metric("presence_parse_errors_total{kind=\"bad_payload\"}") == 0);
  CHECK(presenced.metric("presence_parse_errors_total{kind=\"unknown_topic\"}") == 0);
}
