// Heartbeat aggregation with a real mosquitto 2.0.11 (docs/broker-ext.md, "Heartbeat
// aggregation"): devices publish heartbeats, the plugin lists their ids once per alive_interval
// on $SYS/presence/<node>/alive; the heartbeats themselves are still delivered.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "broker_fixture.h"

using namespace presence::test;
using namespace presence::test::broker_ext;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::vector<std::string> kAggOpts = {"basic_auth off", "node itest",
                                           "heartbeat_topic devices/{id}/heartbeat"};

std::vector<json> alive_messages(mqtt::Collector& c) {
  std::vector<json> v;
  for (const auto& m : c.snapshot()) {
    if (m.topic == std::string(kPrefix) + "/alive") v.push_back(json::parse(m.payload));
  }
  return v;
}

std::set<std::string> union_of_ids(const std::vector<json>& alive) {
  std::set<std::string> s;
  for (const auto& a : alive) {
    for (const auto& id : a["ids"]) s.insert(id.get<std::string>());
  }
  return s;
}

mqtt::ConnectOptions id(const std::string& client_id) {
  mqtt::ConnectOptions o;
  o.client_id = client_id;
  return o;
}

}  // namespace

TEST_CASE("3 devices heartbeating several times in 1 s: alive lists exactly them, heartbeats still delivered") {
  Mosquitto broker(plugin_conf(kAggOpts));
  broker.start();
  mqtt::Collector sys(broker.port(), kFilter, "sys");
  mqtt::Collector devs(broker.port(), "devices/+/heartbeat", "devs");
  auto boot = sys.wait_for("/boot", "", 5000ms);
  REQUIRE(boot);
  CHECK(body(*boot)["heartbeat_topic"] == "devices/{id}/heartbeat");

  const std::vector<std::string> names = {"dev-a", "dev-b", "dev-c"};
  std::vector<std::unique_ptr<mqtt::RawClient>> clients;
  for (const auto& n : names) {
    clients.push_back(std::make_unique<mqtt::RawClient>());
    REQUIRE(clients.back()->connect(broker.port(), id(n)) == 0);
  }
  // Non-matching topics first, on the same connection as dev-a's heartbeats: the broker handles
  // one connection's packets in order, so they are processed before dev-a is listed.
  REQUIRE(clients[0]->publish("devices/dev-x/status", "{}"));
  REQUIRE(clients[0]->publish("devices/dev-y/heartbeat/extra", "{}"));
  REQUIRE(clients[0]->publish("devices//heartbeat", "{}"));
  REQUIRE(clients[0]->publish("other/dev-z/heartbeat", "{}"));
  const int rounds = 5;
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      REQUIRE(clients[i]->publish("devices/" + names[i] + "/heartbeat", "{\"r\":" + std::to_string(r) + "}"));
    }
    std::this_thread::sleep_for(150ms);  // pacing of the publishers, not an assertion
  }

  const std::set<std::string> expected(names.begin(), names.end());
  REQUIRE(wait_for([&] { return union_of_ids(alive_messages(sys)) == expected; }, 3000ms));
  // The plugin counted every heartbeat (and the empty id as rejected).
  REQUIRE(wait_for([&] {
    auto hb = last_heartbeat(sys);
    return !hb.is_null() && hb["heartbeats_seen"] == 3 * rounds;
  }, 3000ms));
  const json hb = last_heartbeat(sys);
  CHECK(hb["heartbeats_rejected"] == 1);
  CHECK(hb["alive_messages"].get<std::size_t>() >= 1);

  const auto alive = alive_messages(sys);
  REQUIRE_FALSE(alive.empty());
  // 5 rounds over ~0.75 s span at most 2 intervals of 1 s (and each interval lists an id once).
  CHECK(alive.size() <= 2);
  std::uint64_t seq = 0;
  for (const auto& a : alive) {
    CHECK(a["v"] == 1);
    CHECK(a["node"] == "itest");
    CHECK(a["boot"] == body(*boot)["boot"]);
    CHECK(a["seq"] == ++seq);
    const auto ids = a["ids"].get<std::vector<std::string>>();
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());  // once each
  }
  CHECK(union_of_ids(alive) == expected);  // dev-x, dev-y, dev-z and "" are not listed

  // The heartbeats themselves are untouched and delivered to a normal subscriber.
  REQUIRE(wait_for([&] { return devs.snapshot().size() >= 3 * rounds; }, 3000ms));
  std::map<std::string, int> per_topic;
  for (const auto& m : devs.snapshot()) ++per_topic[m.topic];
  CHECK(per_topic["devices/dev-a/heartbeat"] == rounds);
  CHECK(per_topic["devices/dev-b/heartbeat"] == rounds);
  CHECK(per_topic["devices/dev-c/heartbeat"] == rounds);
  CHECK(per_topic.count("devices//heartbeat") == 1);  // delivered too, only not aggregated
  CHECK(devs.snapshot().front().payload.rfind("{\"r\":", 0) == 0);
}

TEST_CASE("alive_max_bytes splits a large interval; every id once") {
  std::vector<std::string> opts = kAggOpts;
  opts.push_back("alive_max_bytes 1024");
  opts.push_back("alive_interval 200");
  Mosquitto broker(plugin_conf(opts));
  broker.start();
  mqtt::Collector sys(broker.port(), kFilter, "sys");
  REQUIRE(sys.wait_for("/boot", "", 5000ms));
  mqtt::RawClient c;
  REQUIRE(c.connect(broker.port(), id("gateway")) == 0);
  std::string burst;
  std::set<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    const std::string dev = "device-" + std::to_string(i);
    expected.insert(dev);
    burst += mqtt::publish_packet("devices/" + dev + "/heartbeat", "1");
  }
  REQUIRE(c.send_raw(burst));
  REQUIRE(wait_for([&] { return union_of_ids(alive_messages(sys)) == expected; }, 3000ms));
  std::size_t listed = 0;
  for (const auto& m : sys.snapshot()) {
    if (m.topic != std::string(kPrefix) + "/alive") continue;
    CHECK(m.payload.size() <= 1024);
    listed += json::parse(m.payload)["ids"].size();
  }
  CHECK(listed == 300);  // one burst inside one or two intervals: no id twice
  CHECK(alive_messages(sys).size() >= 300 * 12 / 1024);
}

TEST_CASE("heartbeat_topic unset: no alive message, heartbeat counters stay 0") {
  Mosquitto broker(plugin_conf({"basic_auth off", "node itest"}));
  broker.start();
  mqtt::Collector sys(broker.port(), kFilter, "sys");
  REQUIRE(sys.wait_for("/boot", "", 5000ms));
  mqtt::RawClient c;
  REQUIRE(c.connect(broker.port(), id("dev-a")) == 0);
  for (int i = 0; i < 5; ++i) REQUIRE(c.publish("devices/dev-a/heartbeat", "{}"));
  CHECK_FALSE(sys.wait_for("/alive", "", 2500ms));
  const json hb = last_heartbeat(sys);
  REQUIRE_FALSE(hb.is_null());
  CHECK(hb["heartbeats_seen"] == 0);
  CHECK(hb["alive_messages"] == 0);
}

TEST_CASE("an invalid heartbeat_topic refuses to load with a line naming the key") {
  Mosquitto broker(plugin_conf({"basic_auth off", "heartbeat_topic devices/+/heartbeat"}));
  CHECK_THROWS(broker.start());
  CHECK(read_file(broker.log_path()).find("plugin_opt_heartbeat_topic: 'devices/+/heartbeat'") !=
        std::string::npos);
  Mosquitto glued(plugin_conf({"basic_auth off", "heartbeat_topic devices/x{id}"}));
  CHECK_THROWS(glued.start());
  CHECK(read_file(glued.log_path()).find("whole topic level") != std::string::npos);
}

TEST_CASE("the commented aggregation example of config/mosquitto-broker-ext.conf loads when uncommented") {
  const std::string example =
      read_file(std::string(PRESENCE_SOURCE_DIR) + "/config/mosquitto-broker-ext.conf");
  std::vector<std::string> opts = {"basic_auth off", "node itest"};
  std::size_t pos = 0;
  while (pos < example.size()) {
    const std::size_t end = std::min(example.find('\n', pos), example.size());
    const std::string ln = example.substr(pos, end - pos);
    for (const char* key : {"heartbeat_topic", "alive_interval", "alive_max_bytes"}) {
      const std::string commented = std::string("# plugin_opt_") + key + " ";
      if (ln.rfind(commented, 0) == 0) opts.push_back(ln.substr(13));
    }
    pos = end + 1;
  }
  REQUIRE(opts.size() == 5);
  Mosquitto broker(plugin_conf(opts));
  broker.start();
  mqtt::Collector sys(broker.port(), kFilter, "sys");
  REQUIRE(sys.wait_for("/boot", "\"heartbeat_topic\":\"devices/{id}/heartbeat\"", 5000ms));
  mqtt::RawClient c;
  REQUIRE(c.connect(broker.port(), id("dev-a")) == 0);
  REQUIRE(c.publish("devices/dev-a/heartbeat", "{}"));
  auto a = sys.wait_for("/alive", "\"ids\":[\"dev-a\"]", 3000ms);
  REQUIRE(a);
  CHECK(body(*a)["seq"] == 1);
}
