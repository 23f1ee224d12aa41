// The scenario scorer on hand-written truth and pages: what counts as a real failure, a covering
// page, a false per-device page, an incident page; the boundaries of min_outage and slack.
#include "test/scenarios/score.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <string>

using namespace presence::scenario;
using nlohmann::json;

namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";

std::string write_tmp(const std::string& name, const std::string& text) {
  const std::string p = std::string(P_tmpdir) + "/scen-score-" + name;
  std::ofstream(p) << text;
  return p;
}

json trigger(const std::string& cls, const std::string& component, const std::string& key,
             const std::string& devices = "") {
  json b = {{"routing_key", kKey},
            {"event_action", "trigger"},
            {"dedup_key", key},
            {"payload",
             {{"summary", "s"}, {"source", "presenced"}, {"severity", "error"}, {"class", cls},
              {"component", component}}}};
  if (!devices.empty()) b["payload"]["custom_details"]["devices"] = devices;
  return b;
}

// 1000 = start. d1 dies at 2000 for good; d2 dies at 2000 and is back at 4000 (short);
// d3 is dropped (server side) at 3000 and reconnects at 3500; d4 is stuck after a drop at 3000;
// end at 20000.
Truth sample_truth() {
  const std::string text =
      R"({"v":1,"t":1000,"event":"start"})" "\n"
      R"({"v":1,"t":1000,"event":"device","device":"d1"})" "\n"
      R"({"v":1,"t":1000,"event":"device","device":"d2"})" "\n"
      R"({"v":1,"t":1000,"event":"device","device":"d3"})" "\n"
      R"({"v":1,"t":1000,"event":"device","device":"d4"})" "\n"
      R"({"v":1,"t":1100,"event":"connect","device":"d1"})" "\n"
      R"({"v":1,"t":2000,"event":"die","device":"d1","cause":"action","was_online":true,"back_after_ms":null})" "\n"
      R"({"v":1,"t":2000,"event":"die","device":"d2","cause":"failure","was_online":true,"back_after_ms":2000})" "\n"
      R"({"v":1,"t":3000,"event":"disconnect","device":"d3","cause":"drop","reconnect_in_ms":500})" "\n"
      R"({"v":1,"t":3000,"event":"disconnect","device":"d4","cause":"drop","reconnect_in_ms":null})" "\n"
      R"({"v":1,"t":3500,"event":"connect","device":"d3"})" "\n"
      R"({"v":1,"t":4000,"event":"connect","device":"d2"})" "\n"
      "garbage\n"
      R"({"v":1,"t":20000,"event":"action","action":"end"})" "\n";
  return read_truth(write_tmp("truth.jsonl", text));
}

}  // namespace

TEST_CASE("truth: real failures are deaths and stuck devices, not server-side drops") {
  const Truth t = sample_truth();
  CHECK(t.devices == 4);
  CHECK(t.start_ms == 1000);
  CHECK(t.end_ms == 20000);
  CHECK(t.errors.size() == 1);
  REQUIRE(t.failures.size() == 3);
  CHECK(t.failures[0].device == "d1");
  CHECK_FALSE(t.failures[0].end_ms.has_value());
  CHECK(t.failures[1].device == "d2");
  CHECK(*t.failures[1].end_ms == 4000);
  CHECK(t.failures[2].device == "d4");
  CHECK(t.failures[2].cause == "stuck:drop");
  CHECK(t.disconnect_causes.at("drop") == 2);
}

TEST_CASE("score: covered, missed, false, min_outage boundary") {
  const Truth t = sample_truth();
  std::vector<Page> pages{
      {6000, trigger("device_offline", "d1", "presence/device/d1")},   // covers d1, 4 s
      {6000, trigger("device_offline", "d3", "presence/device/d3")},   // d3 never failed: false
      {6000, trigger("fleet_incident", "fleet", "presence/incident/1")},
      {7000, trigger("fleet_incident", "fleet", "presence/incident/1")},  // same key: one incident
      {9000, trigger("stragglers", "fleet", "presence/stragglers/1", "d4")},
      {25000, trigger("device_offline", "d3", "presence/device/d3x")},  // after the end: ignored
  };
  // min_outage 2000: d2 (exactly 2000 down) is required at the boundary and missed.
  ModeScore s = score(t, pages, 2000, 2000, kKey);
  CHECK(s.required == 3);
  CHECK(s.paged == 2);
  CHECK(s.missed == 1);
  CHECK(s.false_device_pages == 1);
  CHECK(s.incident_pages == 1);
  CHECK(s.straggler_alerts == 1);
  CHECK(s.straggler_devices == 1);
  CHECK(s.false_straggler_devices == 0);
  CHECK(s.pages_total == 5);
  REQUIRE(s.latency_p50_s.has_value());
  CHECK(*s.latency_p50_s == doctest::Approx(4.0));
  CHECK(*s.latency_p99_s == doctest::Approx(6.0));
  // One ms more: d2's 2000 ms outage is too short to have to be paged.
  s = score(t, pages, 2001, 2000, kKey);
  CHECK(s.required == 2);
  CHECK(s.missed == 0);
}

TEST_CASE("score: slack after the device is back, group members, invalid requests") {
  const Truth t = sample_truth();
  // d2 is back at 4000: a page at 6000 is covered with slack 2000, false with slack 1999.
  std::vector<Page> pages{{6000, trigger("device_group", "devices", "presence/group/1", "d2,d3")}};
  ModeScore s = score(t, pages, 1000, 2000, kKey);
  CHECK(s.false_device_pages == 1);  // d3 only
  CHECK(s.device_pages == 1);
  s = score(t, pages, 1000, 1999, kKey);
  CHECK(s.false_device_pages == 2);
  json bad = trigger("device_offline", "d1", "k");
  bad["routing_key"] = "nope";
  s = score(t, {{3000, bad}}, 1000, 0, kKey);
  CHECK(s.invalid == 1);
  CHECK(s.pages_total == 0);
}

TEST_CASE("validate_pd: Events v2 shape") {
  CHECK(validate_pd(trigger("device_offline", "d1", "k"), kKey).empty());
  CHECK(validate_pd({{"routing_key", kKey}, {"event_action", "resolve"}, {"dedup_key", "k"}}, kKey).empty());
  CHECK_FALSE(validate_pd({{"routing_key", kKey}, {"event_action", "ack"}, {"dedup_key", "k"}}, kKey).empty());
  CHECK_FALSE(validate_pd({{"routing_key", kKey}, {"event_action", "resolve"}, {"dedup_key", std::string(256, 'k')}}, kKey).empty());
  json t = trigger("device_offline", "d1", "k");
  t["payload"]["severity"] = "page";
  CHECK_FALSE(validate_pd(t, kKey).empty());
  t = trigger("device_offline", "d1", "k");
  t["payload"].erase("summary");
  CHECK_FALSE(validate_pd(t, kKey).empty());
}

TEST_CASE("score: clients that are not simulated devices are foreign, not false") {
  const Truth t = sample_truth();
  std::vector<Page> pages{
      {6000, trigger("device_offline", "presenced-other", "presence/device/presenced-other")},
      {9000, trigger("stragglers", "fleet", "presence/stragglers/1", "d4,presenced-other")},
  };
  pages[1].body["payload"]["custom_details"]["count"] = "5";
  const ModeScore s = score(t, pages, 2000, 2000, kKey);
  CHECK(s.false_device_pages == 0);
  CHECK(s.foreign_pages == 2);
  CHECK(s.straggler_devices == 1);
  CHECK(s.straggler_unlisted == 3);
}
