// Tests presence/ingest/hygiene.*: the device-hygiene analysis (issue 14 item 6), pure, driven
// with a simulated clock.
#include "presence/ingest/hygiene.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

using namespace presence::ingest;
using presence::core::DisconnectReason;
using presence::core::EventKind;
using presence::core::MonoTime;
using presence::core::mono_ms;
using presence::core::Source;

namespace {

Parsed status(const std::string& id, bool online, std::uint16_t source = 0) {
  Parsed p;
  p.what = Parsed::What::DeviceEvent;
  p.topic_kind = TopicKind::Status;
  p.source = Source::Status;
  p.kind = online ? EventKind::Connected : EventKind::Disconnected;
  p.id = id;
  p.source_index = source;
  return p;
}
Parsed replay(const std::string& id, bool online) {
  Parsed p = status(id, online);
  p.what = Parsed::What::DeviceResync;
  return p;
}
Parsed heartbeat(const std::string& id, std::uint16_t source = 0) {
  Parsed p;
  p.what = Parsed::What::DeviceEvent;
  p.topic_kind = TopicKind::Heartbeat;
  p.source = Source::Heartbeat;
  p.kind = EventKind::Heartbeat;
  p.id = id;
  p.source_index = source;
  return p;
}
Parsed session(const std::string& id, bool connected, int keepalive = -1, bool superseded = false) {
  Parsed p;
  p.what = Parsed::What::DeviceEvent;
  p.topic_kind = connected ? TopicKind::BrokerExtConnected : TopicKind::BrokerExtDisconnected;
  p.source = Source::BrokerExt;
  p.kind = connected ? EventKind::Connected : EventKind::Disconnected;
  if (superseded) p.reason = DisconnectReason::Takeover;
  p.id = id;
  p.keepalive = keepalive;
  return p;
}

HygieneRules rules() {
  HygieneRules r;
  r.core.heartbeat_timeout_ceiling = std::chrono::minutes(30);
  r.will_wait = std::chrono::seconds(10);
  return r;
}

std::vector<std::string> checks_of(const HygieneReport& r, const std::string& id) {
  std::vector<std::string> out;
  for (const auto& f : r.findings)
    if (f.id == id) out.push_back(f.check);
  return out;
}
bool has(const HygieneReport& r, const std::string& id, const std::string& check) {
  const auto c = checks_of(r, id);
  return std::find(c.begin(), c.end(), check) != c.end();
}
std::size_t count(const HygieneReport& r, const std::string& check) {
  for (const auto& [k, n] : r.counts)
    if (k == check) return n;
  return 0;
}

}  // namespace

TEST_CASE("a device with birth, will after every disconnect and heartbeats has no finding") {
  HygieneObserver o;
  const std::string t = "devices/good/status";
  o.observe(session("good", true, 30), "", false, mono_ms(0));
  o.observe(status("good", true), t, false, mono_ms(10));
  o.observe(heartbeat("good"), "devices/good/heartbeat", false, mono_ms(60000));
  o.observe(session("good", false), "", false, mono_ms(70000));
  o.observe(status("good", false), t, false, mono_ms(70005));
  const auto r = o.analyze(rules(), mono_ms(3600000));
  CHECK(r.devices_checked == 1);
  CHECK(r.findings.empty());
  CHECK(r.counts.size() == std::size(kHygieneChecks));
}

TEST_CASE("no_last_will: a disconnect without an offline status, judged at will_wait") {
  HygieneObserver o(100, std::chrono::seconds(10));
  o.observe(session("nowill", true, 30), "", false, mono_ms(0));
  o.observe(status("nowill", true), "devices/nowill/status", false, mono_ms(5));
  o.observe(heartbeat("nowill"), "devices/nowill/heartbeat", false, mono_ms(10));
  o.observe(session("nowill", false), "", false, mono_ms(1000));
  // T-1: the will may still come.
  CHECK_FALSE(has(o.analyze(rules(), mono_ms(10999)), "nowill", "no_last_will"));
  // T: it did not.
  const auto r = o.analyze(rules(), mono_ms(11000));
  REQUIRE(has(r, "nowill", "no_last_will"));
  CHECK(r.findings[0].fix.find("devices/nowill/status") != std::string::npos);
  CHECK(count(r, "no_last_will") == 1);
}

TEST_CASE("a will that arrives just before the session event counts; a takeover is no disconnect") {
  HygieneObserver o;
  o.observe(session("a", true), "", false, mono_ms(0));
  o.observe(status("a", true), "devices/a/status", false, mono_ms(1));
  o.observe(status("a", false), "devices/a/status", false, mono_ms(5000));
  o.observe(session("a", false), "", false, mono_ms(5002));
  o.observe(session("b", true), "", false, mono_ms(0));
  o.observe(status("b", true), "devices/b/status", false, mono_ms(1));
  o.observe(session("b", false, -1, /*superseded=*/true), "", false, mono_ms(5000));
  const auto r = o.analyze(rules(), mono_ms(100000));
  CHECK_FALSE(has(r, "a", "no_last_will"));
  CHECK_FALSE(has(r, "b", "no_last_will"));
}

TEST_CASE("will_topic_unmatched: the broker saw it leave, presenced never saw a status") {
  HygieneObserver o;
  o.observe(session("ghost", true), "", false, mono_ms(0));
  o.observe(session("ghost", false), "", false, mono_ms(1000));
  auto r = o.analyze(rules(), mono_ms(20000));
  CHECK(checks_of(r, "ghost") == std::vector<std::string>{"will_topic_unmatched"});
  // Without any status pattern there is nothing to match: not reported.
  auto no_status = rules();
  no_status.status_patterns = false;
  CHECK(o.analyze(no_status, mono_ms(20000)).findings.empty());
}

TEST_CASE("birth_not_retained and stale_retained_online from the retained replay") {
  HygieneObserver o;
  // Connected now (client list), but the broker replays the retained will.
  Parsed list;
  list.what = Parsed::What::ClientList;
  list.ids = {"lamp"};
  o.observe(list, "", false, mono_ms(0));
  o.observe(replay("lamp", false), "devices/lamp/status", true, mono_ms(1));
  // Disconnected per broker-ext, but the retained birth says online.
  o.observe(session("plug", true), "", false, mono_ms(0));
  o.observe(session("plug", false), "", false, mono_ms(1));
  o.observe(status("plug", false), "devices/plug/status", false, mono_ms(2));
  o.observe(replay("plug", true), "devices/plug/status", true, mono_ms(3));
  // Never in a session event, left out of the client list, retained "online": stale.
  o.observe(replay("gone", true), "devices/gone/status", true, mono_ms(4));
  const auto r = o.analyze(rules(), mono_ms(5));
  CHECK(has(r, "gone", "stale_retained_online"));
  CHECK(has(r, "lamp", "birth_not_retained"));
  CHECK_FALSE(has(r, "lamp", "stale_retained_online"));
  CHECK(has(r, "plug", "stale_retained_online"));
  CHECK_FALSE(has(r, "plug", "birth_not_retained"));
}

TEST_CASE("birth_will_topics_differ") {
  HygieneObserver o;
  o.observe(status("x", true), "home/x/online", false, mono_ms(0));
  o.observe(status("x", false), "home/x/lwt", false, mono_ms(1));
  const auto r = o.analyze(rules(), mono_ms(2));
  REQUIRE(has(r, "x", "birth_will_topics_differ"));
  CHECK(r.findings[0].problem.find("home/x/online") != std::string::npos);
  CHECK(r.findings[0].problem.find("home/x/lwt") != std::string::npos);
}

TEST_CASE("keepalive_too_long: 1.5 x keepalive against the class's heartbeat ceiling") {
  auto ru = rules();
  ru.core.heartbeat_timeout_ceiling = std::chrono::seconds(60);
  presence::core::DeviceClass battery;
  battery.name = "battery";
  battery.heartbeat_timeout_ceiling = std::chrono::hours(25);
  ru.core.device_classes.push_back(battery);
  HygieneObserver o;
  o.observe(session("at", true, 40), "", false, mono_ms(0));      // 60 s: at the ceiling, fine
  o.observe(session("over", true, 41), "", false, mono_ms(0));    // 61.5 s: over
  o.observe(session("sleepy", true, 3600), "", false, mono_ms(0));
  o.set_device_class("sleepy", 1);                                // judged by 25 h: fine
  const auto r = o.analyze(ru, mono_ms(1));
  CHECK_FALSE(has(r, "at", "keepalive_too_long"));
  REQUIRE(has(r, "over", "keepalive_too_long"));
  CHECK_FALSE(has(r, "sleepy", "keepalive_too_long"));
  for (const auto& f : r.findings)
    if (f.id == "over") CHECK(f.fix.find("at most 40 s") != std::string::npos);
}

TEST_CASE("births_without_heartbeats once the heartbeat ceiling has passed") {
  auto ru = rules();
  ru.core.heartbeat_timeout_ceiling = std::chrono::seconds(100);
  HygieneObserver o;
  o.observe(status("mute", true), "devices/mute/status", false, mono_ms(0));
  CHECK_FALSE(has(o.analyze(ru, mono_ms(99999)), "mute", "births_without_heartbeats"));
  CHECK(has(o.analyze(ru, mono_ms(100000)), "mute", "births_without_heartbeats"));
  ru.heartbeat_patterns = false;
  CHECK_FALSE(has(o.analyze(ru, mono_ms(100000)), "mute", "births_without_heartbeats"));
}

TEST_CASE("id_in_two_sources names both sources") {
  auto ru = rules();
  ru.source_names = {"topics", "tasmota", "esphome"};
  HygieneObserver o;
  o.observe(status("dup", true, 1), "tele/dup/LWT", false, mono_ms(0));
  o.observe(status("dup", true, 2), "dup/status", false, mono_ms(1));
  o.observe(heartbeat("dup", 1), "tele/dup/STATE", false, mono_ms(2));
  const auto r = o.analyze(ru, mono_ms(3));
  REQUIRE(has(r, "dup", "id_in_two_sources"));
  for (const auto& f : r.findings)
    if (f.check == "id_in_two_sources")
      CHECK(f.problem.find("tasmota, esphome") != std::string::npos);
}

TEST_CASE("random_client_id_churn and the looks_random heuristic") {
  CHECK(HygieneObserver::looks_random("paho1234567890abcdef"));
  CHECK(HygieneObserver::looks_random("mqttjs_3f9a1c2b"));
  CHECK(HygieneObserver::looks_random("6f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f"));
  CHECK_FALSE(HygieneObserver::looks_random("tasmota_5C2A1B"));
  CHECK_FALSE(HygieneObserver::looks_random("sensor-0042"));
  CHECK_FALSE(HygieneObserver::looks_random("a4cf12b3c4d5"));  // a MAC: stable
  HygieneObserver o;
  const std::string id = "mqttjs_3f9a1c2b";
  o.observe(session(id, true), "", false, mono_ms(0));
  o.observe(status(id, true), "devices/" + id + "/status", false, mono_ms(0));
  CHECK_FALSE(has(o.analyze(rules(), mono_ms(1)), id, "random_client_id_churn"));  // still here
  o.observe(session(id, false), "", false, mono_ms(2));
  o.observe(status(id, false), "devices/" + id + "/status", false, mono_ms(3));
  CHECK(has(o.analyze(rules(), mono_ms(4)), id, "random_client_id_churn"));
}

TEST_CASE("bounded: devices beyond max_devices are counted, findings beyond limit truncated") {
  HygieneObserver o(2);
  for (int i = 0; i < 5; ++i)
    o.observe(status("d" + std::to_string(i), true), "a/" + std::to_string(i), false, mono_ms(0));
  CHECK(o.size() == 2);
  CHECK(o.dropped() == 3);
  auto ru = rules();
  ru.core.heartbeat_timeout_ceiling = std::chrono::seconds(1);
  const auto r = o.analyze(ru, mono_ms(5000), 1);
  CHECK(r.devices_dropped == 3);
  CHECK(r.findings.size() == 1);
  CHECK(r.truncated);
  CHECK(count(r, "births_without_heartbeats") == 2);
}
