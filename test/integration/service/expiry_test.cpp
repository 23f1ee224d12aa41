// Device expiry on the real presenced and a real mosquitto (issue 19 item 9: 200,000 junk ids in
// a minute were all kept for good): a bounded flood of ids that each sent one message is
// forgotten after the (test-shortened) presence.forget_unconfirmed_after, its retained output is
// cleared, a real device is unaffected, and it is all counted.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <string>

#include "test/integration/service/harness.h"

using namespace presence::itest;
using presence::test::Mosquitto;

namespace {

using Clock = std::chrono::steady_clock;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// What a new subscriber to presence/devices/# is replayed: the retained device topics.
std::set<std::string> retained_devices(const std::string& uri) {
  mqtt::async_client c(uri, "retained-" + unique_suffix());
  std::mutex mu;
  std::set<std::string> ids;
  std::atomic<long long> last_ms{0};
  const auto t0 = Clock::now();
  auto now_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  };
  c.set_message_callback([&](mqtt::const_message_ptr m) {
    if (!m->is_retained() || m->get_payload().empty()) return;
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(m->get_topic().substr(std::string("presence/devices/").size()));
    last_ms = now_ms();
  });
  c.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait_for(5s);
  c.subscribe("presence/devices/#", 0)->wait_for(5s);
  // The replay arrives at once; done after 500 ms without a message (bounded: 10 s).
  last_ms = now_ms();
  while (now_ms() - last_ms < 500 && now_ms() < 10000) std::this_thread::sleep_for(50ms);
  c.disconnect()->wait_for(2s);
  // The callback uses mu and ids, which go before c does: no delivery after this point (the
  // Observer's teardown, test/support/observer.h).
  c.disable_callbacks();
  std::lock_guard<std::mutex> lock(mu);
  return ids;
}

// Sum of presence_devices{state=...}: the devices presenced knows.
double known_devices(Presenced& p) {
  double n = 0;
  for (const char* s : {"unknown", "online", "suspect", "offline", "flapping"}) {
    const double v = p.metric(std::string("presence_devices{state=\"") + s + "\"}");
    if (v > 0) n += v;
  }
  return n;
}

}  // namespace

TEST_CASE("a junk-id flood is forgotten after forget_unconfirmed_after; a real device is not") {
  const int n = env_int("PRESENCE_EXPIRY_FLOOD", 2000);
  Mosquitto broker;
  broker.start();
  PresencedOptions o;
  o.presence_extra = "  forget_unconfirmed_after: 2s\n  forget_after: 1h\n";
  Presenced p(broker.port(), o);
  p.start();
  Observer obs(broker.uri());
  mqtt_pub(broker.port(), "devices/real-1/status", "online", true);
  REQUIRE(obs.wait_state("real-1", "online", 10s));

  // Each junk id sends one "offline": judged suspect, offline after offline_grace (1 s), and
  // forgotten 2 s later; its pending device alert (alert_after 2 min) is cancelled, never sent.
  mqtt::async_client flood(broker.uri(), "flood-" + unique_suffix(),
                           mqtt::create_options(MQTTVERSION_3_1_1, n + 100));
  flood.connect()->wait_for(10s);
  REQUIRE(flood.is_connected());
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i)
    flood.publish("devices/junk-" + std::to_string(i) + "/status", "offline", 0, false);
  REQUIRE(wait_for([&] { return known_devices(p) >= n + 1; }, 20s));

  REQUIRE(wait_for([&] { return p.metric("presence_devices_forgotten_total") >= n; }, 30s));
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  MESSAGE(n << " junk ids forgotten " << secs << " s after the flood began");
  CHECK(p.metric("presence_devices_forgotten_total") == n);
  CHECK(known_devices(p) == 1);
  CHECK(p.metric("presence_devices_refused_total") == 0);
  // The API shows only the real device.
  const auto devices = nlohmann::json::parse(p.body("/v1/devices?limit=100"), nullptr, false);
  REQUIRE(devices.is_object());
  CHECK(devices["total"] == 1);
  REQUIRE(devices["devices"].size() == 1);
  CHECK(devices["devices"][0]["id"] == "real-1");
  CHECK(p.status("/v1/devices/junk-7") == 404);
  // Their retained topics are cleared, behind real output; the real device's stays.
  REQUIRE(wait_for([&] { return p.metric("presence_devices_cleared_total") >= n; }, 30s));
  // (cleared_total counts publishes handed to the client; the broker may still be taking them.)
  std::set<std::string> retained;
  CHECK(wait_for([&] {
    retained = retained_devices(broker.uri());
    return retained == std::set<std::string>{"real-1"};
  }, 20s));
  INFO("retained device topics: " << retained.size());
  CHECK(retained.count("real-1") == 1);
  // The real device is unaffected and still judged.
  CHECK(obs.state("real-1") == "online");
  mqtt_pub(broker.port(), "devices/real-1/status", "offline", true);
  CHECK(obs.wait_state("real-1", "offline", 10s));
  // A forgotten id that speaks again is a new device.
  mqtt_pub(broker.port(), "devices/junk-7/status", "online", false);
  CHECK(obs.wait_state("junk-7", "online", 10s));
  CHECK(p.status("/v1/devices/junk-7") == 200);
  flood.disconnect()->wait_for(2s);
}

TEST_CASE("presence.max_devices reached: new ids are refused, paged once as presence/self/device_cap") {
  Mosquitto broker;
  broker.start();
  PresencedOptions o;
  o.presence_extra = "  max_devices: 5\n";
  Presenced p(broker.port(), o);
  p.start();
  Observer obs(broker.uri());
  for (int i = 0; i < 8; ++i) mqtt_pub(broker.port(), "devices/d" + std::to_string(i) + "/status", "online", false);
  REQUIRE(wait_for([&] { return p.metric("presence_devices_refused_total") >= 3; }, 20s));
  CHECK(known_devices(p) == 5);
  REQUIRE(wait_for([&] { return p.log().find("presence.max_devices (5) reached") != std::string::npos; }, 10s));
  // Paged from memory as a self alert (see /v1/alerts); said once.
  REQUIRE(wait_for([&] { return p.body("/v1/alerts").find("presence/self/device_cap") != std::string::npos; }, 10s));
  mqtt_pub(broker.port(), "devices/d9/status", "online", false);
  REQUIRE(wait_for([&] { return p.metric("presence_devices_refused_total") >= 4; }, 10s));
  const std::string log = p.log();
  std::size_t pages = 0;
  for (std::size_t at = log.find("presence.max_devices (5) reached: messages"); at != std::string::npos;
       at = log.find("presence.max_devices (5) reached: messages", at + 1))
    ++pages;
  CHECK(pages == 1);
}
