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

TEST_CASE("recovery: storm time, lost devices per broker, 99 % / 100 % back, attempts") {
  // 4 devices on 2 brokers (dev-000001, -3 on broker 0; -2, -4 on broker 1). The drop at 10000
  // takes all four; dev-000004 was never online (not lost). Back at 11000, 12500, 14000.
  const std::string text =
      R"({"v":1,"t":1000,"event":"start"})" "\n"
      R"({"v":1,"t":1100,"event":"connect","device":"dev-000001"})" "\n"
      R"({"v":1,"t":1100,"event":"connect","device":"dev-000002"})" "\n"
      R"({"v":1,"t":1200,"event":"connect","device":"dev-000003"})" "\n"
      R"({"v":1,"t":9999,"event":"action","action":"die","at_ms":8999})" "\n"
      R"({"v":1,"t":10000,"event":"action","action":"drop","at_ms":9000})" "\n"
      R"({"v":1,"t":10001,"event":"disconnect","device":"dev-000001","cause":"drop","reconnect_in_ms":900})" "\n"
      R"({"v":1,"t":10001,"event":"disconnect","device":"dev-000002","cause":"drop","reconnect_in_ms":2000})" "\n"
      R"({"v":1,"t":10002,"event":"disconnect","device":"dev-000003","cause":"drop","reconnect_in_ms":3000})" "\n"
      R"({"v":1,"t":11000,"event":"connect","device":"dev-000001"})" "\n"
      R"({"v":1,"t":11500,"event":"connect","device":"dev-000004"})" "\n"
      R"({"v":1,"t":12500,"event":"connect","device":"dev-000002"})" "\n"
      R"({"v":1,"t":14000,"event":"connect","device":"dev-000003"})" "\n"
      R"({"v":1,"t":15000,"event":"disconnect","device":"dev-000003","cause":"drop","reconnect_in_ms":1})" "\n"
      R"({"v":1,"t":20000,"event":"summary","worker":0,"connect_attempts":10,"connects":6,"connect_failures":4,"connack_refused":3})" "\n"
      R"({"v":1,"t":20000,"event":"summary","worker":1,"connect_attempts":5,"connects":3,"connect_failures":2,"connack_refused":0})" "\n";
  const Recovery r = recovery(write_tmp("recovery.jsonl", text), 2);
  CHECK(r.storm_action == "drop");  // `die` is not a storm
  CHECK(r.storm_ms == 10000);
  CHECK(r.all.lost == 3);
  CHECK(r.all.back == 3);
  REQUIRE(r.all.t99_s.has_value());
  CHECK(*r.all.t99_s == doctest::Approx(4.0));  // ceil(0.99 * 3) = 3rd
  CHECK(*r.all.t100_s == doctest::Approx(4.0));
  REQUIRE(r.by_broker.size() == 2);
  CHECK(r.by_broker[0].lost == 2);
  CHECK(*r.by_broker[0].t100_s == doctest::Approx(4.0));
  CHECK(r.by_broker[1].lost == 1);
  CHECK(*r.by_broker[1].t100_s == doctest::Approx(2.5));
  CHECK(r.all.peak_connects_per_s == 2);  // 11000 and 11500 in the first second
  CHECK(r.connect_attempts == 15);
  CHECK(r.connect_failures == 6);
  CHECK(r.connack_refused == 3);

  // A device still down at the end: 100 % is never reached, 99 % of 3 neither.
  const Recovery partial = recovery(write_tmp("recovery2.jsonl",
      R"({"v":1,"t":1000,"event":"connect","device":"dev-000001"})" "\n"
      R"({"v":1,"t":1000,"event":"connect","device":"dev-000002"})" "\n"
      R"({"v":1,"t":2000,"event":"action","action":"exec"})" "\n"
      R"({"v":1,"t":2100,"event":"disconnect","device":"dev-000001","cause":"broker_closed","reconnect_in_ms":1})" "\n"
      R"({"v":1,"t":2100,"event":"disconnect","device":"dev-000002","cause":"broker_closed","reconnect_in_ms":1})" "\n"
      R"({"v":1,"t":3000,"event":"connect","device":"dev-000002"})" "\n"), 1);
  CHECK(partial.storm_action == "exec");
  CHECK(partial.all.lost == 2);
  CHECK(partial.all.back == 1);
  CHECK_FALSE(partial.all.t99_s.has_value());
  CHECK_FALSE(partial.all.t100_s.has_value());
}

TEST_CASE("recovery: the disconnect window bounds what the storm lost; no storm, no numbers") {
  const std::string text =
      R"({"v":1,"t":1000,"event":"connect","device":"dev-000001"})" "\n"
      R"({"v":1,"t":2000,"event":"action","action":"signal"})" "\n"
      R"({"v":1,"t":7000,"event":"disconnect","device":"dev-000001","cause":"keepalive","reconnect_in_ms":1})" "\n";
  CHECK(recovery(write_tmp("recovery3.jsonl", text), 1, 5000).all.lost == 1);  // T: storm + window
  CHECK(recovery(write_tmp("recovery3.jsonl", text), 1, 4999).all.lost == 0);  // T + 1 ms late
  const Recovery none = recovery(write_tmp("recovery4.jsonl",
      R"({"v":1,"t":1000,"event":"connect","device":"dev-000001"})" "\n"), 1);
  CHECK(none.storm_action.empty());
  CHECK(none.all.lost == 0);
}

TEST_CASE("heartbeats: counters summed over boots, peak connect rate within one boot") {
  const std::string text =
      R"($SYS/presence/a/heartbeat {"v":1,"boot":"b1","ts":1000,"clients":0,"connects":0,"disconnects":0,"refused_rate_limited":0,"refused_flap_banned":0,"auth_refused":0})" "\n"
      R"($SYS/presence/a/heartbeat {"v":1,"boot":"b1","ts":2000,"clients":900,"connects":900,"disconnects":0,"refused_rate_limited":5,"refused_flap_banned":0,"auth_refused":0})" "\n"
      R"($SYS/presence/a/heartbeat {"v":1,"boot":"b1","ts":2500,"clients":1000,"connects":1000,"disconnects":10,"refused_rate_limited":7,"refused_flap_banned":1,"auth_refused":0})" "\n"
      "garbage line\n"
      R"($SYS/presence/a/heartbeat {"v":1,"boot":"b2","ts":9000,"clients":50,"connects":50,"disconnects":0,"refused_rate_limited":2,"refused_flap_banned":0,"auth_refused":1})" "\n";
  const BrokerCounters c = read_heartbeats(write_tmp("hb.txt", text));
  CHECK(c.heartbeats == 4);
  CHECK(c.boots == 2);
  CHECK(c.connects == 1050);
  CHECK(c.disconnects == 10);
  CHECK(c.refused_rate_limited == 9);
  CHECK(c.refused_flap_banned == 1);
  CHECK(c.auth_refused == 1);
  CHECK(c.max_clients == 1000);
  CHECK(c.peak_connects_per_s == doctest::Approx(900.0));  // 900 in 1 s beats 100 in 0.5 s
  CHECK(read_heartbeats("/nonexistent/hb.txt").heartbeats == 0);
}

// --- Issue 11: page truth -------------------------------------------------------------------

namespace {

// 20 devices: s1..s10 in site-b (s1..s3 firmware beta), a1..a10 in site-a. At 3000 a drop of
// s1..s5 (all back within 500 ms: healed); at 10000 a drop of s6..s10 (never back before 12000:
// lasting); a1 dies at 11000 (other site, during the burst), a2 at 30000 (no event near).
Truth truth_pt() {
  std::string text = R"({"v":1,"t":1000,"event":"start"})" "\n";
  for (int i = 1; i <= 10; ++i)
    text += R"({"v":1,"t":1000,"event":"device","device":"s)" + std::to_string(i) + R"(","site":"site-b","firmware":")" +
            (i <= 3 ? "beta" : "3.7") + "\"}\n";
  for (int i = 1; i <= 10; ++i)
    text += R"({"v":1,"t":1000,"event":"device","device":"a)" + std::to_string(i) + R"(","site":"site-a","firmware":"3.7"})" "\n";
  text += R"({"v":1,"t":3000,"event":"action","action":"drop"})" "\n";
  for (int i = 1; i <= 5; ++i) {
    text += R"({"v":1,"t":3000,"event":"disconnect","device":"s)" + std::to_string(i) + R"(","cause":"drop","reconnect_in_ms":200})" "\n";
    text += R"({"v":1,"t":3500,"event":"connect","device":"s)" + std::to_string(i) + "\"}\n";
  }
  text += R"({"v":1,"t":10000,"event":"action","action":"drop"})" "\n";
  for (int i = 6; i <= 10; ++i)
    text += R"({"v":1,"t":10000,"event":"disconnect","device":"s)" + std::to_string(i) + R"(","cause":"drop","reconnect_in_ms":5000})" "\n";
  text += R"({"v":1,"t":11000,"event":"die","device":"a1","cause":"action","was_online":true,"back_after_ms":null})" "\n";
  text += R"({"v":1,"t":30000,"event":"die","device":"a2","cause":"action","was_online":true,"back_after_ms":null})" "\n";
  text += R"({"v":1,"t":60000,"event":"action","action":"end"})" "\n";
  return read_truth(write_tmp("truth-pt.jsonl", text));
}

Expectations ex_pt() {
  Expectations e;
  e.offline_grace_ms = 2000;
  e.bound_ms = 9000;
  e.burst_ms = 5000;
  e.check_scopes = true;
  e.incident_scopes = {"site=site-b"};
  e.check_cohorts = true;
  e.cohorts = {"firmware=beta"};
  return e;
}

}  // namespace

TEST_CASE("page truth: a page for a healed drop, a wrong scope, a mislabelled cohort") {
  const Truth t = truth_pt();
  json cohort = trigger("device_group", "firmware=beta", "presence/group/1", "s1,s2,s3");
  cohort["payload"]["custom_details"]["cohort"] = "firmware=beta";
  json wrong = trigger("device_group", "firmware=3.7", "presence/group/2", "s1,s2,a3");
  wrong["payload"]["custom_details"]["cohort"] = "firmware=3.7";
  json hidden = trigger("device_group", "devices", "presence/group/3", "s1,s2,s3");  // "unrelated"
  std::vector<Page> pages{
      {4000, trigger("fleet_incident", "site=site-b", "presence/incident/1")},   // healed drop: false
      {11500, trigger("fleet_incident", "fleet", "presence/incident/2")},        // lasting, wrong scope
      {11600, trigger("fleet_incident", "site=site-b", "presence/incident/3")},  // lasting, right scope
      {12000, cohort},
      {12000, wrong},
      {12000, hidden},
  };
  const ModeScore s = score(t, pages, 2000, 2000, kKey, ex_pt());
  CHECK(s.false_incident_pages == 1);
  CHECK(s.scope_errors == 1);
  CHECK(s.cohort_pages == 1);
  CHECK(s.cohort_mislabels == 2);
  // Without expectations nothing is judged (the old scorecard).
  const ModeScore old = score(t, pages, 2000, 2000, kKey);
  CHECK(old.false_incident_pages == 0);
  CHECK(old.scope_errors == 0);
  CHECK(old.cohort_mislabels == 0);
}

TEST_CASE("page truth: latency bound at T-1 / T / T+1; a death inside a paged scope's burst is exempt") {
  const Truth t = truth_pt();
  for (std::int64_t late : {8999, 9000, 9001}) {
    CAPTURE(late);
    std::vector<Page> pages{
        {11600, trigger("fleet_incident", "site=site-b", "presence/incident/1")},
        {11000 + late, trigger("device_offline", "a1", "presence/device/a1")},
        {30000 + 4000, trigger("device_offline", "a2", "presence/device/a2")},
    };
    const ModeScore s = score(t, pages, 2000, 2000, kKey, ex_pt());
    // a1 died during the site-b burst but in site-a: bounded like a2.
    CHECK(s.bounded == 2);
    CHECK(s.over_bound == (late > 9000 ? 1u : 0u));
  }
  // A fleet-scoped incident covers a1: its death inside the burst is part of the event.
  std::vector<Page> fleet{{11600, trigger("fleet_incident", "fleet", "presence/incident/1")}};
  const ModeScore f = score(t, fleet, 2000, 2000, kKey, ex_pt());
  CHECK(f.bounded == 1);   // a2 only
  CHECK(f.over_bound == 1);  // and never paged
}
