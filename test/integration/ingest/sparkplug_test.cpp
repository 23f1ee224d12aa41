// Sparkplug B and parents end to end (issue 15 must-show): a real mosquitto, a real presenced,
// presence-sim as Sparkplug edge nodes, and the mock PagerDuty of the alerting harness (every
// Events API v2 field validated). Bounded: each case waits on conditions with timeouts.
#include <doctest/doctest.h>

#include <mqtt/client.h>

#include <optional>

#include "presence/ingest/sparkplug_codec.h"
#include "test/integration/alerting/harness.h"

namespace presence::atest {

namespace sp = presence::ingest::sparkplug;

namespace {

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// presence-sim in Sparkplug edge-node mode: `nodes` edge nodes of group "plant" (ids
// dev-000001...), each with `devices` devices (dev-0...). kill() is a power cut: every connection
// drops at once and the broker publishes each node's NDEATH will.
class EdgeNodes {
 public:
  EdgeNodes(int broker_port, int nodes, int devices, const std::string& timeline = {}) {
    const std::string y = "v: 1\noptions:\n  devices: " + std::to_string(nodes) +
                          "\n  heartbeat: 1s\n  behaviour: \"well_behaved:100\"\n"
                          "  backoff_initial: 500ms\n  backoff_max: 1s\n  connect_rate: 2000/s\n"
                          "  keepalive: 30s\n  progress: 0\n  sparkplug_group: plant\n  sparkplug_devices: " +
                          std::to_string(devices) + "\ntimeline:\n" + timeline + "  - at: 10m\n    end: {}\n";
    const std::string scenario = dir_.write("scenario.yaml", y);
    proc_ = test::Process({std::string(PRESENCE_BINARY_DIR) + "/presence/tools/sim/presence-sim", "--broker",
                           "127.0.0.1:" + std::to_string(broker_port), "--scenario", scenario, "--seed", "1",
                           "--out", dir_.file("truth.jsonl")},
                          dir_.file("sim.log"));
  }
  void kill() { proc_.stop(SIGKILL, 3000ms); }
  std::string log() const { return test::read_file(dir_.file("sim.log")); }

 private:
  test::TempDir dir_;
  test::Process proc_;
};

class Publisher {
 public:
  explicit Publisher(int port)
      : client_("tcp://127.0.0.1:" + std::to_string(port), "sparkplug-test-" + std::to_string(::getpid())) {
    mqtt::connect_options o;
    o.set_clean_session(true);
    client_.connect(o);
  }
  ~Publisher() {
    try {
      client_.disconnect();
    } catch (...) {
    }
  }
  void pub(const std::string& topic, const std::string& payload, bool retain = false) {
    client_.publish(topic, payload.data(), payload.size(), 1, retain);
  }

 private:
  mqtt::client client_;
};

std::string triggers(const MockPagerDuty& pd) { return dump(pd.events()); }

// The retained message of a topic (presenced's output): "" when none arrives within 3 s.
std::string retained(int port, const std::string& topic) {
  mqtt::client c("tcp://127.0.0.1:" + std::to_string(port), "sparkplug-retained-" + std::to_string(::getpid()));
  mqtt::connect_options o;
  o.set_clean_session(true);
  c.connect(o);
  c.start_consuming();
  c.subscribe(topic, 1);
  std::string out;
  mqtt::const_message_ptr m;
  if (c.try_consume_message_for(&m, 3s) && m) out = m->to_string();
  try {
    c.disconnect();
  } catch (...) {
  }
  return out;
}

nlohmann::json parse(const std::string& s) { return nlohmann::json::parse(s, nullptr, false); }

}  // namespace

TEST_CASE("an edge node with 20 devices dies: exactly one page naming the node, resolved when it returns") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.extra = "sparkplug:\n  enabled: true\n";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  EdgeNodes sim(broker.port(), 3, 20, "  - at: 6s\n    die: {devices: dev-000002, back_after: 10s}\n");
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 63; }, 20s), p.log() << sim.log());
  const std::string key = "presence/device/plant/dev-000002";
  REQUIRE_MESSAGE(pd.wait_events("trigger", key, 1, 30s), triggers(pd) << p.log());
  REQUIRE_MESSAGE(pd.wait_events("resolve", key, 1, 40s), triggers(pd) << p.log());
  std::this_thread::sleep_for(2s);
  const auto events = pd.events();
  MESSAGE("pages: " << dump(events));
  CHECK(pd.count("trigger", "") == 1);
  CHECK(pd.count("resolve", "") == 1);
  REQUIRE(!events.empty());
  CHECK(events[0].summary.find("20 devices behind it unreachable") != std::string::npos);
  CHECK(events[0].details.value("unreachable_behind", "") == "20");
  CHECK(pd.errors().empty());
  CHECK(p.metric("presence_incidents_open") == 0);
  CHECK(p.metric("presence_unreachable_held_total") >= 20);
  CHECK(p.metric("presence_devices_unreachable") == 0);  // all back
  CHECK(p.metric("presence_sparkplug_messages_total") > 63);
}

// Issue 15 "must show": users see a child of a dead edge node as "unreachable" naming its parent
// (not "offline") in the API and in the retained output, and "online" again when it returns.
TEST_CASE("a device of a dead edge node reads unreachable with its parent: API, retained topic; then online") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.extra = "sparkplug:\n  enabled: true\n";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  std::optional<EdgeNodes> sim;
  sim.emplace(broker.port(), 2, 3);
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 8; }, 20s), p.log() << sim->log());
  const std::string node = "plant/dev-000001", child = "plant/dev-000001/dev-0";
  const std::string api = "/v1/devices?id_prefix=" + child;
  const std::string topic = "presence/devices/" + child;
  auto api_child = [&] {
    const auto j = parse(p.body(api));
    return j.is_object() && j.contains("devices") && j["devices"].size() == 1 ? j["devices"][0] : nlohmann::json();
  };
  CHECK(api_child().value("state", "") == "online");
  CHECK_FALSE(api_child().contains("parent"));
  sim->kill();  // every edge node's NDEATH: the nodes offline, their devices unreachable behind them
  REQUIRE_MESSAGE(wait_for([&] { return api_child().value("state", "") == "unreachable"; }, 30s),
                  p.body(api) << p.log());
  CHECK(api_child().value("parent", "") == node);
  const auto detail = parse(p.body("/v1/devices/" + child));
  REQUIRE(detail.is_object());
  CHECK(detail.value("state", "") == "unreachable");
  CHECK(detail.value("parent", "") == node);
  // The node itself is offline (it is the failure), and filters use the words shown.
  // (suspect until presence.offline_grace is over, then offline).
  const std::string node_state = parse(p.body("/v1/devices/" + node)).value("state", "");
  CHECK((node_state == "suspect" || node_state == "offline"));
  CHECK(parse(p.body("/v1/devices?state=unreachable"))["devices"].size() == 6);
  CHECK(parse(p.body("/v1/devices?state=" + node_state))["devices"].size() == 2);
  // The retained device topic says the same (coalesced publish: wait for it).
  nlohmann::json r;
  REQUIRE_MESSAGE(wait_for([&] {
                    r = parse(retained(broker.port(), topic));
                    return r.is_object() && r.value("state", "") == "unreachable";
                  }, 20s),
                  r.dump());
  CHECK(r.value("parent", "") == node);
  CHECK(r.value("v", 0) == 1);
  const std::string node_retained = parse(retained(broker.port(), "presence/devices/" + node)).value("state", "");
  CHECK((node_retained == "suspect" || node_retained == "offline"));
  // The nodes come back (a new session): the child is online, no parent field.
  sim.emplace(broker.port(), 2, 3);
  REQUIRE_MESSAGE(wait_for([&] { return api_child().value("state", "") == "online"; }, 30s), p.body(api) << p.log());
  CHECK_FALSE(api_child().contains("parent"));
  REQUIRE_MESSAGE(wait_for([&] {
                    r = parse(retained(broker.port(), topic));
                    return r.is_object() && r.value("state", "") == "online";
                  }, 20s),
                  r.dump());
  CHECK_FALSE(r.contains("parent"));
}

// With sparkplug.rebirth, an edge node alive (NDATA) whose NBIRTH presenced never saw is asked
// for a rebirth: NCMD Node Control/Rebirth, at most once per rebirth_interval. Off: nothing.
namespace {
struct NcmdWatch {
  explicit NcmdWatch(int port)
      : c("tcp://127.0.0.1:" + std::to_string(port), "sparkplug-ncmd-" + std::to_string(::getpid())) {
    mqtt::connect_options o;
    o.set_clean_session(true);
    c.connect(o);
    c.start_consuming();
    c.subscribe("spBv1.0/+/NCMD/#", 1);
  }
  ~NcmdWatch() {
    try {
      c.disconnect();
    } catch (...) {
    }
  }
  // The messages that arrive: the first within `wait`, each next within 300 ms of the one before
  // (decoded; a payload that does not decode fails the test).
  std::vector<std::pair<std::string, sp::Payload>> take(std::chrono::milliseconds wait) {
    std::vector<std::pair<std::string, sp::Payload>> out;
    mqtt::const_message_ptr m;
    while (c.try_consume_message_for(&m, out.empty() ? wait : std::chrono::milliseconds(300)) && m) {
      sp::Payload pl;
      std::string err;
      CHECK_MESSAGE(sp::decode(m->to_string(), pl, err), err);
      out.emplace_back(m->get_topic(), pl);
    }
    return out;
  }
  mqtt::client c;
};
}  // namespace

TEST_CASE("sparkplug.rebirth: an edge node alive without its NBIRTH is sent one NCMD Rebirth per interval") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.extra = "sparkplug:\n  enabled: true\n  rebirth: true\n  rebirth_interval: 3s\n";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  NcmdWatch watch(broker.port());
  Publisher pub(broker.port());
  sp::PayloadSpec s;
  s.timestamp = wall_ms();
  s.seq = 1;
  s.values = {{"temperature", 21.5}};
  pub.pub("spBv1.0/plant/NDATA/edge-9", sp::encode(s));
  auto got = watch.take(5s);
  REQUIRE_MESSAGE(got.size() == 1, p.log());
  CHECK(got[0].first == "spBv1.0/plant/NCMD/edge-9");
  CHECK(got[0].second.rebirth);
  const auto first = std::chrono::steady_clock::now();
  // More signs of life inside the interval: asked already, not again.
  for (int i = 0; i < 3; ++i) pub.pub("spBv1.0/plant/NDATA/edge-9", sp::encode(s));
  REQUIRE_MESSAGE(wait_for([&] { return p.metric("presence_sparkplug_rebirths_suppressed_total") >= 3; }, 10s),
                  p.metrics() << p.log());
  if (std::chrono::steady_clock::now() - first < 2500ms) CHECK(watch.take(200ms).empty());
  CHECK(p.metric("presence_sparkplug_rebirths_total") == 1);
  // The interval over, the node (still unborn) is asked again.
  std::this_thread::sleep_until(first + 3200ms);
  pub.pub("spBv1.0/plant/NDATA/edge-9", sp::encode(s));
  got = watch.take(5s);
  REQUIRE_MESSAGE(got.size() == 1, p.log());
  CHECK(got[0].second.rebirth);
  CHECK(p.metric("presence_sparkplug_rebirths_total") == 2);
  // Born: no more requests, however much data.
  sp::PayloadSpec b;
  b.timestamp = wall_ms();
  b.seq = 0;
  b.bd_seq = 0;
  pub.pub("spBv1.0/plant/NBIRTH/edge-9", sp::encode(b));
  std::this_thread::sleep_until(first + 6500ms);
  pub.pub("spBv1.0/plant/NDATA/edge-9", sp::encode(s));
  CHECK(watch.take(1500ms).empty());
  CHECK(p.metric("presence_sparkplug_rebirths_total") == 2);
}

TEST_CASE("sparkplug.rebirth off (the default): presenced publishes no NCMD") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.extra = "sparkplug:\n  enabled: true\n";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  NcmdWatch watch(broker.port());
  Publisher pub(broker.port());
  sp::PayloadSpec s;
  s.timestamp = wall_ms();
  s.seq = 1;
  for (int i = 0; i < 3; ++i) pub.pub("spBv1.0/plant/NDATA/edge-9", sp::encode(s));
  REQUIRE(wait_for([&] { return p.metric("presence_sparkplug_messages_total") >= 3; }, 10s));
  CHECK(watch.take(1500ms).empty());
  CHECK(p.metric("presence_sparkplug_rebirths_total") == 0);
}

TEST_CASE("a DDEATH is one device page; its DBIRTH resolves it") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.extra = "sparkplug:\n  enabled: true\n";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  EdgeNodes sim(broker.port(), 2, 5);
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 12; }, 20s), p.log() << sim.log());
  Publisher pub(broker.port());
  sp::PayloadSpec s;
  s.timestamp = wall_ms();
  s.seq = 42;
  pub.pub("spBv1.0/plant/DDEATH/dev-000001/dev-3", sp::encode(s));
  const std::string key = "presence/device/plant/dev-000001/dev-3";
  REQUIRE_MESSAGE(pd.wait_events("trigger", key, 1, 30s), triggers(pd) << p.log());
  s.seq = 43;
  pub.pub("spBv1.0/plant/DBIRTH/dev-000001/dev-3", sp::encode(s));
  REQUIRE_MESSAGE(pd.wait_events("resolve", key, 1, 30s), triggers(pd) << p.log());
  std::this_thread::sleep_for(2s);
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.count("trigger", "") == 1);
  CHECK(pd.errors().empty());
  // A malformed payload is dropped with a clear error, counted, and costs nothing else.
  pub.pub("spBv1.0/plant/NDEATH/dev-000002", std::string("\x0a\xff\xff", 3));
  CHECK(wait_for([&] { return p.metric("presence_parse_errors_total{kind=\"bad_payload\"}") >= 1; }, 10s));
  CHECK(p.log().find("not a Sparkplug B protobuf payload") != std::string::npos);
  CHECK(p.online() == 12);
}

TEST_CASE("primary host STATE offline, then every edge node leaves: one page naming the host") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.extra = "sparkplug:\n  enabled: true\n  primary_host: scada\n";
  Presenced p(broker.port(), pd.url(), o);
  Publisher pub(broker.port());
  pub.pub("spBv1.0/STATE/scada", sp::encode_state({true, wall_ms()}), true);
  p.start();
  EdgeNodes sim(broker.port(), 3, 5);
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 19; }, 20s), p.log() << sim.log());
  // The host goes away (its will, retained); the edge nodes disconnect by design (Sparkplug 3.0:
  // an edge node whose primary host is offline leaves), each broker publishing its NDEATH.
  pub.pub("spBv1.0/STATE/scada", sp::encode_state({false, wall_ms() + 1}), true);
  sim.kill();
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/device/scada", 1, 30s), triggers(pd) << p.log());
  std::this_thread::sleep_for(3s);
  const auto events = pd.events();
  MESSAGE("pages: " << dump(events));
  CHECK(pd.count("trigger", "") == 1);
  REQUIRE(!events.empty());
  CHECK(events[0].summary.find("18 devices behind it unreachable") != std::string::npos);
  CHECK(pd.errors().empty());
}

TEST_CASE("a Zigbee2MQTT-style bridge offline: one page, its devices unreachable, not paged") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.extra = "sources:\n  - preset: zigbee2mqtt\n";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  Publisher pub(broker.port());
  pub.pub("zigbee2mqtt/bridge/state", "{\"state\":\"online\"}", true);
  for (int i = 0; i < 10; ++i) pub.pub("zigbee2mqtt/sensor-" + std::to_string(i) + "/availability", "{\"state\":\"online\"}", true);
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 11; }, 20s), p.log());
  pub.pub("zigbee2mqtt/bridge/state", "{\"state\":\"offline\"}", true);
  for (int i = 0; i < 10; ++i) pub.pub("zigbee2mqtt/sensor-" + std::to_string(i) + "/availability", "{\"state\":\"offline\"}", true);
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/device/zigbee2mqtt", 1, 30s), triggers(pd) << p.log());
  std::this_thread::sleep_for(3s);
  const auto events = pd.events();
  MESSAGE("pages: " << dump(events));
  CHECK(pd.count("trigger", "") == 1);
  REQUIRE(!events.empty());
  CHECK(events[0].summary.find("10 devices behind it unreachable") != std::string::npos);
  CHECK(pd.errors().empty());
}

}  // namespace presence::atest
