// FleetMonitor: every threshold at T-1 / T / T+1 on a simulated clock (no sleeps).
#include "presence/core/fleet.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace presence::core;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kS = 1000;
constexpr std::int64_t kMin = 60 * kS;

// A small fleet driven by hand: remembers each device's state so transitions are well formed.
struct Fleet {
  FleetMonitor m;
  std::vector<State> state;
  std::vector<IncidentEvent> events;

  explicit Fleet(FleetConfig c = test_config()) : m(std::move(c)) {}

  static FleetConfig test_config() {
    FleetConfig c;
    c.window_resolution = 1ms;  // exact window boundaries in tests
    return c;
  }

  DeviceIndex add(std::vector<std::pair<std::string, std::string>> labels = {}, std::int64_t t = 0) {
    auto d = static_cast<DeviceIndex>(state.size());
    state.push_back(State::Unknown);
    for (auto& [k, v] : labels) m.set_label(d, k, v);
    to(d, State::Online, t, Cause::Connected);
    return d;
  }
  void add_n(std::size_t n, std::vector<std::pair<std::string, std::string>> labels = {}) {
    for (std::size_t i = 0; i < n; ++i) add(labels);
  }
  void to(DeviceIndex d, State s, std::int64_t t, Cause c = Cause::Disconnected) {
    Transition tr;
    tr.device = d;
    tr.from = state[d];
    tr.to = s;
    tr.cause = c;
    tr.at = mono_ms(t);
    state[d] = s;
    m.on_transition(tr);
  }
  void drop(DeviceIndex d, std::int64_t t) { to(d, State::Suspect, t); }
  void back(DeviceIndex d, std::int64_t t) { to(d, State::Online, t, Cause::StableOnline); }
  void tick(std::int64_t t) { m.tick(mono_ms(t)); }
  std::vector<IncidentEvent> take() {
    std::vector<IncidentEvent> out;
    m.drain(out);
    events.insert(events.end(), out.begin(), out.end());
    return out;
  }
  std::size_t count(IncidentEvent::Kind k) {
    take();
    std::size_t n = 0;
    for (auto& e : events) n += e.kind == k;
    return n;
  }
};

}  // namespace

TEST_CASE("drop incident: incident_open_floor at T-1 / T / T+1") {
  for (std::uint32_t drops : {19u, 20u, 21u}) {
    CAPTURE(drops);
    FleetConfig c = Fleet::test_config();
    c.defaults.incident_open_floor = 20;
    c.defaults.incident_open_fraction = 0.001;  // the floor decides
    Fleet f(c);
    f.add_n(1000);
    for (DeviceIndex d = 0; d < drops; ++d) f.drop(d, 1000 + d);
    CHECK(f.count(IncidentEvent::Kind::Opened) == (drops >= 20 ? 1u : 0u));
  }
}

TEST_CASE("drop incident: incident_open_fraction at T-1 / T / T+1") {
  for (std::uint32_t drops : {9u, 10u, 11u}) {
    CAPTURE(drops);
    FleetConfig c = Fleet::test_config();
    c.defaults.incident_open_floor = 1;
    c.defaults.incident_open_fraction = 0.10;  // share = drops / (online + drops) = drops / 100
    Fleet f(c);
    f.add_n(100);
    for (DeviceIndex d = 0; d < drops; ++d) f.drop(d, 1000);
    CHECK(f.count(IncidentEvent::Kind::Opened) == (drops >= 10 ? 1u : 0u));
  }
}

TEST_CASE("drop incident: incident_window at T-1 / T / T+1") {
  // Drops at 0 and 30 s; the third at window-1 still sees the first, at window it has expired.
  for (std::int64_t third : {60 * kS - 1, 60 * kS, 60 * kS + 1}) {
    CAPTURE(third);
    FleetConfig c = Fleet::test_config();
    c.incident_window = 60s;
    c.defaults.incident_open_floor = 3;
    c.defaults.incident_open_fraction = 0.001;
    Fleet f(c);
    f.add_n(100);
    f.drop(0, 0);
    f.drop(1, 30 * kS);
    f.drop(2, third);
    CHECK(f.count(IncidentEvent::Kind::Opened) == (third < 60 * kS ? 1u : 0u));
  }
}

TEST_CASE("a device that came back no longer counts as a drop") {
  FleetConfig c = Fleet::test_config();
  c.defaults.incident_open_floor = 3;
  c.defaults.incident_open_fraction = 0.001;
  Fleet f(c);
  f.add_n(100);
  f.drop(0, 0);
  f.drop(1, 1);
  f.back(0, 2);
  f.drop(2, 3);
  CHECK(f.count(IncidentEvent::Kind::Opened) == 0);
  CHECK(f.m.segment("", "")->drops_in_window == 2);
  f.drop(3, 4);
  CHECK(f.count(IncidentEvent::Kind::Opened) == 1);
}

TEST_CASE("incident_stable_for and straggler_grace at T-1 / T / T+1") {
  FleetConfig c = Fleet::test_config();
  c.defaults.incident_open_floor = 10;
  c.defaults.incident_open_fraction = 0.10;
  c.defaults.incident_close_fraction = 0.05;
  c.incident_stable_for = 10min;
  c.straggler_grace = 15min;
  Fleet f(c);
  f.add_n(1000);
  for (DeviceIndex d = 0; d < 300; ++d) f.drop(d, 1000 + d);  // 30 %
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  const std::uint32_t id = inc->id;
  CHECK(inc->held.size() == 300);
  CHECK(f.m.held_by(5) == id);
  CHECK(f.m.held_by(500) == 0);
  // Later drops in scope are held immediately.
  f.drop(500, 2000);
  CHECK(f.m.held_by(500) == id);
  CHECK(inc->still_down == 301);

  // 280 come back at t = 5 min; 21 stay down (2.1 % < 5 %): back from then.
  const std::int64_t back_at = 5 * kMin;
  for (DeviceIndex d = 0; d < 280; ++d) f.back(d, back_at);
  CHECK(inc->still_down == 21);
  f.tick(back_at);
  REQUIRE(inc->back_since.has_value());
  CHECK(to_ms(*inc->back_since) == back_at);

  f.tick(back_at + 10 * kMin - 1);
  CHECK(f.count(IncidentEvent::Kind::Resolved) == 0);
  f.tick(back_at + 10 * kMin);
  CHECK(f.count(IncidentEvent::Kind::Resolved) == 1);
  CHECK(inc->stage == IncidentStage::Recovering);
  f.tick(back_at + 10 * kMin + 1);
  CHECK(f.count(IncidentEvent::Kind::Resolved) == 1);

  const std::int64_t resolved = back_at + 10 * kMin;
  f.back(280, resolved + 1000);  // one more recovers during the grace: not a straggler
  f.tick(resolved + 15 * kMin - 1);
  CHECK(f.count(IncidentEvent::Kind::Stragglers) == 0);
  f.tick(resolved + 15 * kMin);
  CHECK(f.count(IncidentEvent::Kind::Stragglers) == 1);
  CHECK(inc->stage == IncidentStage::Stragglers);
  CHECK(inc->stragglers.size() == 20);
  f.tick(resolved + 15 * kMin + 1);
  CHECK(f.count(IncidentEvent::Kind::Stragglers) == 1);

  // Stragglers come back one by one: closed with the last one.
  for (DeviceIndex d = 281; d < 300; ++d) f.back(d, resolved + 20 * kMin);
  CHECK(f.count(IncidentEvent::Kind::Closed) == 0);
  f.back(500, resolved + 21 * kMin);
  CHECK(f.count(IncidentEvent::Kind::Closed) == 1);
  CHECK(f.m.held_by(500) == 0);
}

TEST_CASE("incident stays open while the segment is not back; a relapse restarts the stable period") {
  FleetConfig c = Fleet::test_config();
  c.defaults.incident_open_floor = 10;
  c.incident_stable_for = 10min;
  Fleet f(c);
  f.add_n(200);
  for (DeviceIndex d = 0; d < 100; ++d) f.drop(d, 0);
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  for (DeviceIndex d = 0; d < 100; ++d) f.back(d, kMin);
  f.tick(kMin);
  CHECK(inc->back_since.has_value());
  for (DeviceIndex d = 0; d < 50; ++d) f.drop(d, 5 * kMin);  // relapse: held, not back
  f.tick(5 * kMin);
  CHECK_FALSE(inc->back_since.has_value());
  f.tick(11 * kMin);
  CHECK(inc->stage == IncidentStage::Open);
  for (DeviceIndex d = 0; d < 50; ++d) f.back(d, 12 * kMin);
  f.tick(22 * kMin - 1);
  CHECK(inc->stage == IncidentStage::Open);
  f.tick(22 * kMin);
  CHECK(inc->stage == IncidentStage::Recovering);
}

namespace {
// 200 devices, 100 drop at 0 (one incident, peak 100), all back at 1 min: back from 1 min.
// Then `relapsing` of them (from `first`) drop and come back at 2 min.
std::int64_t resolved_at_after_relapses(DeviceIndex first, DeviceIndex relapsing,
                                        std::uint32_t floor, double fraction) {
  FleetConfig c = Fleet::test_config();
  c.defaults.incident_open_floor = floor;
  c.defaults.incident_open_fraction = fraction;
  c.incident_window = 5min;
  c.incident_stable_for = 10min;
  Fleet f(c);
  f.add_n(200);
  for (DeviceIndex d = 0; d < 100; ++d) f.drop(d, 0);
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  for (DeviceIndex d = 0; d < 100; ++d) f.back(d, kMin);
  f.tick(kMin);
  REQUIRE(inc->back_since.has_value());
  for (DeviceIndex d = first; d < first + relapsing; ++d) f.drop(d, 2 * kMin);
  for (DeviceIndex d = first; d < first + relapsing; ++d) f.back(d, 2 * kMin + 500);
  for (std::int64_t t = 2 * kMin; t <= 30 * kMin; t += 1000) {
    f.tick(t);
    if (inc->stage != IncidentStage::Open) {
      CHECK(f.count(IncidentEvent::Kind::Opened) == 1);  // never a second incident
      return t;
    }
  }
  return -1;
}
}  // namespace

TEST_CASE("relapses: devices an incident held dropping again keep it open (incident 003)") {
  // A flapping cohort is down in turns, fewer than the floor at any moment: without this the
  // incident resolved between bursts and the next burst opened (and paged) a new one.
  // incident_open_floor 10, fraction 0.1 x peak 100 = 10: T-1 = 9 relapses change nothing
  // (resolves at 1 min + 10 min), T = 10 restart the stable period once the relapses have left
  // the 5 min window (2 min + 5 min, resolves 10 min later).
  CHECK(resolved_at_after_relapses(0, 9, 10, 0.1) == 11 * kMin);
  CHECK(resolved_at_after_relapses(0, 10, 10, 0.1) == 17 * kMin);
  CHECK(resolved_at_after_relapses(0, 11, 10, 0.1) == 17 * kMin);
  // The fraction of the peak: floor 5, 0.2 x 100 = 20 relapses needed.
  CHECK(resolved_at_after_relapses(0, 19, 5, 0.2) == 11 * kMin);
  CHECK(resolved_at_after_relapses(0, 20, 5, 0.2) == 17 * kMin);
  // Devices the incident never held dropping (independent failures during it) are not relapses.
  CHECK(resolved_at_after_relapses(100, 20, 10, 0.1) == 11 * kMin);
}

TEST_CASE("incident 001: stuck devices above the floor still resolve the incident and become stragglers") {
  // 60 of 200 drop; 48 come back, 12 are stuck (6 % of the fleet: above incident_close_fraction
  // and incident_open_floor). Before incident_recovered_share the incident never resolved and the
  // stuck devices were never reported.
  FleetConfig c = Fleet::test_config();
  c.defaults.incident_open_floor = 10;
  c.incident_stable_for = 10min;
  c.straggler_grace = 15min;
  Fleet f(c);
  f.add_n(200);
  for (DeviceIndex d = 0; d < 60; ++d) f.drop(d, 0);
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  // 30 back (exactly half of the peak of 60): not settled yet.
  for (DeviceIndex d = 0; d < 30; ++d) f.back(d, kMin);
  f.tick(kMin);
  CHECK_FALSE(inc->back_since.has_value());
  // The 31st is more than half: settled from 2 min; resolves at 12 min, not a millisecond before.
  f.back(30, 2 * kMin);
  f.tick(2 * kMin);
  REQUIRE(inc->back_since.has_value());
  for (DeviceIndex d = 31; d < 48; ++d) f.back(d, 3 * kMin);
  f.tick(12 * kMin - 1);
  CHECK(inc->stage == IncidentStage::Open);
  f.tick(12 * kMin);
  CHECK(inc->stage == IncidentStage::Recovering);
  CHECK(f.count(IncidentEvent::Kind::Resolved) == 1);
  // Straggler grace: T-1 nothing, T one stragglers event naming exactly the 12 stuck devices.
  f.tick(27 * kMin - 1);
  CHECK(f.count(IncidentEvent::Kind::Stragglers) == 0);
  f.tick(27 * kMin);
  CHECK(f.count(IncidentEvent::Kind::Stragglers) == 1);
  REQUIRE(inc->stragglers.size() == 12);
  for (DeviceIndex d : inc->stragglers) CHECK((d >= 48 && d < 60));
}

TEST_CASE("segment incident: scope is the broker node, other nodes keep paging normally") {
  FleetConfig c = Fleet::test_config();
  Fleet f(c);
  for (int i = 0; i < 300; ++i) f.add({{"broker_node", "n1"}});
  for (int i = 0; i < 700; ++i) f.add({{"broker_node", "n2"}});
  for (DeviceIndex d = 0; d < 300; ++d) f.drop(d, 1000 + d);
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  CHECK(inc->scope_key == "broker_node");
  CHECK(inc->scope_value == "n1");
  CHECK(inc->held.size() == 300);
  f.drop(400, 5000);  // n2 device: not in scope
  CHECK(f.m.held_by(400) == 0);
}

TEST_CASE("fleet-wide drop opens one fleet incident, not one per segment") {
  Fleet f;
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i)
    f.add({{"site", "s" + std::to_string(i % 40)}, {"firmware", i % 3 == 0 ? "1.0" : "2.0"}});
  std::vector<DeviceIndex> order(2000);
  for (DeviceIndex d = 0; d < 2000; ++d) order[d] = d;
  std::shuffle(order.begin(), order.end(), rng);
  for (std::size_t i = 0; i < order.size(); ++i) f.drop(order[i], 1000 + static_cast<std::int64_t>(i));
  CHECK(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  CHECK(inc->scope_key.empty());
  CHECK(inc->held.size() + 0 == 2000);
}

TEST_CASE("a burst seen drop by drop: a narrow incident widens to the fleet within incident_merge_within") {
  // Scenario 02 at small scale: 100 % of sessions lost, the wills arrive one by one, and the
  // first segment to qualify was one firmware (5 of its 10 devices) while the fleet was at 2.5 %;
  // then each firmware opened its own incident: three pages for one event.
  auto run = [](std::int64_t second_burst_at, auto&& then) {
    FleetConfig c = Fleet::test_config();
    c.defaults.incident_open_floor = 5;
    c.defaults.incident_open_fraction = 0.1;
    c.incident_window = 5min;
    c.incident_merge_within = 1s;
    Fleet f(c);
    for (int i = 0; i < 120; ++i) f.add({{"firmware", "a"}});
    for (int i = 0; i < 70; ++i) f.add({{"firmware", "b"}});
    for (int i = 0; i < 10; ++i) f.add({{"firmware", "c"}});
    for (DeviceIndex d = 190; d < 195; ++d) f.drop(d, 10 * kS);  // 5 of c: c qualifies alone
    REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
    CHECK(f.m.incidents().front()->scope_value == "c");
    for (DeviceIndex d = 0; d < 20; ++d) f.drop(d, 10 * kS + second_burst_at);  // 20 of a
    then(f);
  };
  // T-1: widened; one incident holds all 25, named after where it started.
  run(999, [](Fleet& f) {
    CHECK(f.count(IncidentEvent::Kind::Opened) == 1);
    REQUIRE(f.m.incidents().size() == 1);
    const Incident* inc = f.m.incidents().front();
    CHECK(inc->scope_key.empty());
    CHECK(inc->widened_from == "firmware=c");
    CHECK(inc->held.size() == 25);
    CHECK(f.m.held_by(0) == inc->id);
    CHECK(f.m.held_by(190) == inc->id);
    // Later drops anywhere in the fleet are held by it, never a third incident.
    f.drop(150, 12 * kS);
    CHECK(f.m.held_by(150) == inc->id);
    CHECK(f.count(IncidentEvent::Kind::Opened) == 1);
  });
  // T: the first incident is too old to change scope: the fleet opens its own incident.
  run(1000, [](Fleet& f) {
    CHECK(f.count(IncidentEvent::Kind::Opened) == 2);
    CHECK(f.m.incidents().front()->widened_from.empty());
  });
}

TEST_CASE("widening needs the fleet to explain the burst, counting what the narrow incident holds") {
  FleetConfig c = Fleet::test_config();
  c.defaults.incident_open_floor = 5;
  c.defaults.incident_open_fraction = 0.1;
  c.incident_merge_within = 1min;
  Fleet f(c);
  for (int i = 0; i < 180; ++i) f.add({{"firmware", "a"}});
  for (int i = 0; i < 10; ++i) f.add({{"firmware", "b"}});
  for (int i = 0; i < 10; ++i) f.add({{"firmware", "c"}});
  for (DeviceIndex d = 180; d < 190; ++d) f.drop(d, kS);  // all of b: its own incident
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  // 5 of c: c qualifies at 50 %; the fleet has 15 of 200 down (7.5 %, x lift 2 = 15 % < 50 %):
  // two cohorts, each its own incident.
  for (DeviceIndex d = 190; d < 195; ++d) f.drop(d, 2 * kS);
  CHECK(f.count(IncidentEvent::Kind::Opened) == 2);
  for (const Incident* inc : f.m.incidents()) CHECK(inc->widened_from.empty());
}

TEST_CASE("node outage: one broker_node incident, not one per site living on that node") {
  // Every site of n0 is 100 % down too; the broadest segment that explains the event wins.
  Fleet f;
  for (int i = 0; i < 4000; ++i)
    f.add({{"broker_node", "n" + std::to_string(i % 4)}, {"site", "s" + std::to_string(i % 100)},
           {"firmware", "fw" + std::to_string(i % 20)}});
  for (DeviceIndex d = 0; d < 4000; d += 4) f.drop(d, 1000 + d);
  CHECK(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  CHECK(inc->scope_key == "broker_node");
  CHECK(inc->scope_value == "n0");
  CHECK(inc->still_down == 1000);
  // The firmwares living on n0 are not "over-represented" within n0: no misleading hint.
  CHECK(f.m.cohort(inc->held, inc->scope_key, inc->scope_value).empty());
}

TEST_CASE("cohort hint names the over-represented firmware") {
  // Incident 003: a small cohort (firmware 3.8.0-b3) behind a larger outage on one node.
  Fleet f;
  for (int i = 0; i < 15; ++i) f.add({{"broker_node", "n1"}, {"firmware", "3.8.0-b3"}});
  for (int i = 0; i < 85; ++i) f.add({{"broker_node", "n1"}, {"firmware", "3.7.2"}});
  for (int i = 0; i < 900; ++i) f.add({{"broker_node", "n2"}, {"firmware", "3.7.2"}});
  // All 15 b3 devices and 10 others on n1 drop: n1 at 25 %.
  for (DeviceIndex d = 0; d < 25; ++d) f.drop(d, 1000 + d);
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  CHECK(inc->scope_key == "broker_node");
  REQUIRE_FALSE(inc->hint.empty());
  CHECK(inc->hint[0].key == "firmware");
  CHECK(inc->hint[0].value == "3.8.0-b3");
  CHECK(inc->hint[0].support == 15);
  // The hint is computed when the incident opens (at the 20th drop: 15 b3 + 5 others), against
  // the scope's devices (n1: 15 of 100 are b3).
  CHECK(inc->hint[0].lift == doctest::Approx((15.0 / 20) / (15.0 / 100)));
  CHECK(inc->hint[0].share_in_scope == doctest::Approx(0.15));
  CHECK(inc->held.size() == 25);
}

TEST_CASE("cohort hint: cohort_min_support and cohort_min_lift") {
  FleetConfig c = Fleet::test_config();
  c.cohort_min_support = 5;
  c.cohort_min_lift = 2.0;
  FleetMonitor m(c);
  std::vector<DeviceIndex> set;
  // 1000 devices: 4 on "rare", 100 on "half", rest "common"; all online.
  for (DeviceIndex d = 0; d < 1000; ++d) {
    m.set_label(d, "firmware", d < 4 ? "rare" : d < 104 ? "half" : "common");
    m.on_transition({d, State::Unknown, State::Online, Cause::Connected, DisconnectReason::Unknown, mono_ms(0)});
  }
  for (DeviceIndex d = 0; d < 4; ++d) set.push_back(d);      // support 4 < 5: never a hint
  for (DeviceIndex d = 4; d < 14; ++d) set.push_back(d);     // half: 10/20 = 50 % vs 10 %: lift 5
  for (DeviceIndex d = 104; d < 110; ++d) set.push_back(d);  // common: lift < 1
  auto h = m.cohort(set, "", "");
  REQUIRE(h.size() == 1);
  CHECK(h[0].value == "half");
  CHECK(h[0].lift == doctest::Approx(5.0));
}

TEST_CASE("reconnect storm: storm_open_floor and storm_open_factor over the learnt baseline") {
  FleetConfig c = Fleet::test_config();
  c.incident_window = 1min;
  c.storm_baseline_tau = 1h;
  c.defaults.storm_open_floor = 50;
  c.defaults.storm_open_factor = 10.0;
  c.defaults.storm_flapping_floor = 1000000;  // rate only
  Fleet f(c);
  f.add_n(1000);
  auto connect = [&](DeviceIndex d, std::int64_t t) { f.m.on_connect(d, mono_ms(t)); };
  for (DeviceIndex d = 0; d < 1000; ++d) connect(d, 0);  // first connects: not reconnects
  // Two hours of background: 20 reconnects a minute (below the floor anyway).
  std::int64_t t = kMin;
  for (int minute = 0; minute < 120; ++minute)
    for (int i = 0; i < 20; ++i) connect(static_cast<DeviceIndex>((minute * 20 + i) % 1000), t + minute * kMin + i * 100);
  t += 120 * kMin;
  f.tick(t + kMin);
  CHECK(f.count(IncidentEvent::Kind::Opened) == 0);
  auto seg = f.m.segment("", "");
  CHECK(seg->baseline_per_window == doctest::Approx(20.0).epsilon(0.15));
  // 150 reconnects in a minute: above the floor, but below 10 x baseline (~200): no storm.
  t += 2 * kMin;
  for (int i = 0; i < 150; ++i) connect(static_cast<DeviceIndex>(i), t + i * 10);
  CHECK(f.count(IncidentEvent::Kind::Opened) == 0);
  // A real storm: 400 within the same minute.
  for (int i = 0; i < 400; ++i) connect(static_cast<DeviceIndex>(i % 1000), t + 2000 + i * 10);
  CHECK(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  CHECK(inc->kind == IncidentKind::Storm);
}

TEST_CASE("reconnect storm: retries while the fleet is still joining are not a storm") {
  // The storm benchmark's ramp: 20,000 devices joining, a few hundred retrying after a connect
  // timeout. A storm needs more reconnects than first connects (joins) in the window.
  auto run = [](int joiners, int retries) {
    FleetConfig c = Fleet::test_config();
    c.incident_window = 1min;
    c.defaults.storm_open_floor = 50;
    c.defaults.storm_open_fraction = 0.01;
    c.defaults.storm_flapping_floor = 1000000;  // rate only
    Fleet f(c);
    f.add_n(1000);
    for (DeviceIndex d = 0; d < 1000; ++d) f.m.on_connect(d, mono_ms(0));
    const std::int64_t t = 10 * kMin;  // the first connects above have left the window
    for (int i = 0; i < joiners; ++i) {
      const DeviceIndex d = f.add({}, t);
      f.m.on_connect(d, mono_ms(t + i));
    }
    for (int i = 0; i < retries; ++i) f.m.on_connect(static_cast<DeviceIndex>(i), mono_ms(t + 5 * kS + i));
    return f.count(IncidentEvent::Kind::Opened);
  };
  CHECK(run(0, 200) == 1);    // established fleet: a storm
  CHECK(run(200, 200) == 0);  // as many joining as retrying: T, not a storm
  CHECK(run(199, 200) == 1);  // T-1 joiners: a storm
  CHECK(run(5000, 400) == 0);
}

TEST_CASE("reconnect storm from flapping devices names the firmware cohort (incident 000)") {
  FleetConfig c = Fleet::test_config();
  c.defaults.storm_flapping_floor = 20;
  c.defaults.storm_flapping_fraction = 0.05;
  c.defaults.storm_open_floor = 1000000;  // flapping only
  Fleet f(c);
  for (int i = 0; i < 1000; ++i) f.add({{"firmware", i < 100 ? "07.06" : "07.07"}, {"site", "s" + std::to_string(i % 10)}});
  // Old firmware devices start flapping; 49 of them: 4.9 % of the fleet, 49 % of 07.06.
  for (DeviceIndex d = 0; d < 49; ++d) f.to(d, State::Flapping, 1000 + d, Cause::FlapStart);
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  CHECK(inc->kind == IncidentKind::Storm);
  // The 07.06 segment qualifies first (20 flapping = 20 % of it): scope names the firmware.
  CHECK(inc->scope_key == "firmware");
  CHECK(inc->scope_value == "07.06");
}

TEST_CASE("blindness is its own incident; devices dropping at the end of the restart grace are held") {
  FleetConfig c = Fleet::test_config();
  c.straggler_grace = 15min;
  Fleet f(c);
  f.add_n(100);
  f.m.set_blind(true, mono_ms(10 * kS));
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  const Incident* inc = f.m.incidents().front();
  CHECK(inc->kind == IncidentKind::Blind);
  f.m.set_blind(false, mono_ms(70 * kS));
  f.m.set_restart_grace(true, mono_ms(70 * kS));
  CHECK(f.count(IncidentEvent::Kind::Resolved) == 1);
  // Restart grace ends at 100 s: 3 devices never showed up.
  for (DeviceIndex d = 0; d < 3; ++d) f.to(d, State::Offline, 100 * kS, Cause::RestartGrace);
  f.m.set_restart_grace(false, mono_ms(100 * kS));
  CHECK(f.m.held_by(0) == inc->id);
  f.tick(100 * kS + 15 * kMin - 1);
  CHECK(f.count(IncidentEvent::Kind::Stragglers) == 0);
  f.tick(100 * kS + 15 * kMin);
  CHECK(f.count(IncidentEvent::Kind::Stragglers) == 1);
  CHECK(inc->stragglers.size() == 3);
}

TEST_CASE("reconnects during restart grace are not a storm") {
  FleetConfig c = Fleet::test_config();
  c.defaults.storm_open_floor = 10;
  Fleet f(c);
  f.add_n(100);
  for (DeviceIndex d = 0; d < 100; ++d) f.m.on_connect(d, mono_ms(0));
  f.m.set_restart_grace(true, mono_ms(kS));
  for (DeviceIndex d = 0; d < 100; ++d) f.m.on_connect(d, mono_ms(2 * kS));
  f.m.set_restart_grace(false, mono_ms(3 * kS));
  CHECK(f.count(IncidentEvent::Kind::Opened) == 0);
}

TEST_CASE("the reconnect wave of an open drop incident is its recovery, not a second incident") {
  // Scenario 02 (incident 001): a fleet-wide session loss, then devices of one model reconnect
  // in a tight loop; before, that opened a storm in model=gw-100 beside the fleet incident.
  FleetConfig c = Fleet::test_config();
  c.defaults.incident_open_floor = 10;
  c.defaults.storm_open_floor = 10;
  c.defaults.storm_open_fraction = 0.05;
  c.defaults.storm_flapping_floor = 1000000;  // rate only
  Fleet f(c);
  for (int i = 0; i < 100; ++i) f.add({{"model", i % 5 < 2 ? "gw-100" : "gw-200"}});
  for (DeviceIndex d = 0; d < 100; ++d) f.m.on_connect(d, mono_ms(0));
  for (DeviceIndex d = 0; d < 100; ++d) f.drop(d, kS);
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  // Back online (released), then each gw-100 reconnects again and again within the window.
  for (DeviceIndex d = 0; d < 100; ++d) f.back(d, 2 * kS);
  for (int round = 0; round < 5; ++round)
    for (DeviceIndex d = 0; d < 100; ++d)
      if (d % 5 < 2) f.m.on_connect(d, mono_ms(3 * kS + round * kS + d));
  CHECK(f.count(IncidentEvent::Kind::Opened) == 1);

  // Without the drop incident, the same wave is a storm (the rule above can fail).
  Fleet g(c);
  for (int i = 0; i < 100; ++i) g.add({{"model", i % 5 < 2 ? "gw-100" : "gw-200"}});
  for (DeviceIndex d = 0; d < 100; ++d) g.m.on_connect(d, mono_ms(0));
  for (int round = 0; round < 5; ++round)
    for (DeviceIndex d = 0; d < 100; ++d)
      if (d % 5 < 2) g.m.on_connect(d, mono_ms(3 * kS + round * kS + d));
  CHECK(g.count(IncidentEvent::Kind::Opened) == 1);
}

TEST_CASE("per-segment threshold overrides") {
  FleetConfig c = Fleet::test_config();
  c.defaults.incident_open_floor = 1000;  // never at fleet level
  FleetThresholds site;
  site.incident_open_floor = 5;
  site.incident_open_fraction = 0.5;
  c.overrides.push_back({"site", "", site});
  Fleet f(c);
  for (int i = 0; i < 10; ++i) f.add({{"site", "a"}});
  for (int i = 0; i < 90; ++i) f.add({{"site", "b"}});
  for (DeviceIndex d = 0; d < 4; ++d) f.drop(d, 1000);
  CHECK(f.count(IncidentEvent::Kind::Opened) == 0);
  f.drop(4, 1000);
  CHECK(f.count(IncidentEvent::Kind::Opened) == 1);
  CHECK(f.m.incidents().front()->scope_value == "a");
}

TEST_CASE("label changes move segment counters") {
  Fleet f;
  DeviceIndex d = f.add({{"firmware", "1"}});
  CHECK(f.m.segment("firmware", "1")->up == 1);
  f.m.set_label(d, "firmware", "2");
  CHECK(f.m.segment("firmware", "1")->up == 0);
  CHECK(f.m.segment("firmware", "2")->up == 1);
  CHECK(f.m.label(d, "firmware") == "2");
  f.m.set_label(d, "firmware", "");
  CHECK(f.m.segment("firmware", "2")->up == 0);
  CHECK(f.m.label(d, "firmware").empty());
  CHECK(f.m.segment("", "")->up == 1);
}

TEST_CASE("snapshot round trip keeps open incidents, held devices and stragglers") {
  FleetConfig c = Fleet::test_config();
  c.defaults.incident_open_floor = 10;
  Fleet f(c);
  for (int i = 0; i < 200; ++i) f.add({{"site", i < 50 ? "a b%" : "c"}});  // site a: 80 %, fleet 20 %
  for (DeviceIndex d = 0; d < 40; ++d) f.drop(d, 5000);
  REQUIRE(f.count(IncidentEvent::Kind::Opened) == 1);
  auto id_of = [](DeviceIndex d) { return "dev " + std::to_string(d); };
  const std::string text = f.m.serialize(id_of);

  IncidentSnapshot snap;
  std::string err;
  REQUIRE(FleetMonitor::deserialize(text, snap, err));
  REQUIRE(snap.incidents.size() == 1);
  CHECK(snap.incidents[0].incident.scope_value == "a b%");
  CHECK(snap.incidents[0].down_ids.size() == 40);
  CHECK(snap.incidents[0].down_ids[3] == "dev 3");

  // Restore into a fresh monitor an hour later (monotonic clocks restart).
  FleetMonitor m2(c);
  std::vector<std::string> interned;
  auto intern = [&](std::string_view id) {
    interned.emplace_back(id);
    return static_cast<DeviceIndex>(std::stoul(std::string(id.substr(4))));
  };
  CHECK(m2.restore(snap, mono_ms(3600 * kS), intern) == 1);
  const Incident* inc = m2.incidents().front();
  CHECK(inc->stage == IncidentStage::Open);
  CHECK(to_ms(inc->opened_at) == 3600 * kS);  // same age as at save time
  CHECK(inc->still_down == 40);
  CHECK(m2.held_by(7) == inc->id);
  IncidentSnapshot again;
  REQUIRE(FleetMonitor::deserialize(m2.serialize(id_of), again, err));
  REQUIRE(again.incidents.size() == 1);
  CHECK(again.incidents[0].held_ids == snap.incidents[0].held_ids);
  CHECK(again.incidents[0].down_ids == snap.incidents[0].down_ids);
  CHECK(again.incidents[0].incident.share == snap.incidents[0].incident.share);
}

TEST_CASE("deserialize rejects garbage with an error, never crashes") {
  IncidentSnapshot snap;
  std::string err;
  CHECK_FALSE(FleetMonitor::deserialize("", snap, err));
  CHECK_FALSE(err.empty());
  CHECK_FALSE(FleetMonitor::deserialize("hello world\n", snap, err));
  CHECK_FALSE(FleetMonitor::deserialize("presence-fleet-incidents 2\n", snap, err));
  CHECK(err.find("version") != std::string::npos);
  CHECK_FALSE(FleetMonitor::deserialize("presence-fleet-incidents 1\nincident 1 drop open % %\n", snap, err));
  CHECK_FALSE(FleetMonitor::deserialize(
      "presence-fleet-incidents 1\nincident 1 drop open % % 0 0 0 - 1 1 0.5 1\nheld %4\nend\n", snap, err));
  CHECK_FALSE(FleetMonitor::deserialize(
      "presence-fleet-incidents 1\nincident 1 drop open % % 0 0 0 - 1 1 nan 1\nend\n", snap, err));
  CHECK_FALSE(FleetMonitor::deserialize(
      "presence-fleet-incidents 1\nincident 1 drop open % % 0 0 0 - 1 1 0.5 1\n", snap, err));
  CHECK(err.find("truncated") != std::string::npos);
  CHECK(FleetMonitor::deserialize(
      "presence-fleet-incidents 1\nincident 1 drop open % % 0 0 0 - 1 1 0.5 1\nheld a%20b\nend\n", snap, err));
  CHECK(snap.incidents.at(0).held_ids.at(0) == "a b");

  // Every truncation and random byte flips of a real snapshot: error or success, never a crash.
  Fleet f;
  f.add_n(100);
  for (DeviceIndex d = 0; d < 30; ++d) f.drop(d, 1000);
  const std::string text = f.m.serialize([](DeviceIndex d) { return std::to_string(d); });
  for (std::size_t n = 0; n < text.size(); ++n) (void)FleetMonitor::deserialize(text.substr(0, n), snap, err);
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::string t = text;
    for (int k = 0; k < 3; ++k) t[rng() % t.size()] = static_cast<char>(rng() % 256);
    if (FleetMonitor::deserialize(t, snap, err)) {
      FleetMonitor m;
      m.restore(snap, mono_ms(0), [](std::string_view) { return DeviceIndex{3}; });
    }
  }
}

TEST_CASE("memory per device is reported") {
  Fleet f;
  for (int i = 0; i < 10000; ++i)
    f.add({{"site", "s" + std::to_string(i % 100)}, {"firmware", std::to_string(i % 7)}, {"broker_node", "n1"}});
  const double per_device = static_cast<double>(f.m.memory_bytes()) / 10000.0;
  // Measured, not asserted (HELPERS.md): the benchmark reports it.
  MESSAGE("fleet bytes/device with 3 label keys: " << per_device);
}

TEST_CASE("reconnect storm: storm_open_fraction keeps normal churn of a big fleet out (no baseline yet)") {
  for (std::uint32_t reconnects : {499u, 500u}) {
    CAPTURE(reconnects);
    FleetConfig c = Fleet::test_config();
    c.defaults.storm_open_floor = 100;
    c.defaults.storm_open_fraction = 0.05;  // 5 % of 10000 = 500
    c.defaults.storm_flapping_floor = 1000000;
    Fleet f(c);
    f.add_n(10000);
    for (DeviceIndex d = 0; d < 10000; ++d) f.m.on_connect(d, mono_ms(0));
    // After the joins have left the 5 min window (while they are in it, it is a ramp).
    for (DeviceIndex d = 0; d < reconnects; ++d) f.m.on_connect(d, mono_ms(6 * kMin + d));
    CHECK(f.count(IncidentEvent::Kind::Opened) == (reconnects >= 500 ? 1u : 0u));
  }
}

TEST_CASE("validate(FleetConfig) names the bad key") {
  CHECK(validate(FleetConfig{}).empty());
  FleetConfig c;
  c.defaults.incident_open_fraction = 1.5;
  CHECK(validate(c).find("incident_open_fraction") != std::string::npos);
  c = FleetConfig{};
  c.defaults.incident_close_fraction = 0.5;  // above the open fraction: no hysteresis
  CHECK(validate(c).find("incident_close_fraction") != std::string::npos);
  c = FleetConfig{};
  c.incident_window = 0ms;
  CHECK(validate(c).find("incident_window") != std::string::npos);
  c = FleetConfig{};
  FleetThresholds bad;
  bad.incident_open_floor = 0;
  c.overrides.push_back({"site", "x", bad});
  CHECK(validate(c) == "overrides[site=x].incident_open_floor: must be at least 1");
}

// Issue 12, one config truth: every problem at its key (the YAML loader reports each at
// alerts.policy.<key>), and the bounds exactly where they are.
TEST_CASE("fleet_problems lists every problem at its key; bounds at the boundary") {
  CHECK(fleet_problems(FleetConfig{}).empty());
  FleetConfig c;
  c.incident_stable_for = 0ms;
  c.straggler_grace = 0ms;
  c.defaults.storm_open_factor = 0.5;
  c.overrides.push_back({"site", "x", FleetThresholds{}});
  c.overrides.back().thresholds.storm_flapping_fraction = 0;
  const auto problems = fleet_problems(c);
  REQUIRE(problems.size() == 4);
  CHECK(problems[0].key == "incident_stable_for");
  CHECK(problems[0].reason == "must be greater than 0");
  CHECK(problems[1].key == "straggler_grace");
  CHECK(problems[2].key == "storm_open_factor");
  CHECK(problems[2].reason == "must be at least 1, got 0.5");
  CHECK(problems[3].key == "overrides[site=x].storm_flapping_fraction");
  CHECK(problems[3].reason == "must be in (0, 1], got 0");
  auto one = [](auto set) {
    FleetConfig f;
    set(f);
    return fleet_problems(f).size();
  };
  CHECK(one([](FleetConfig& f) { f.straggler_grace = 1ms; }) == 0);  // T+1 of > 0
  CHECK(one([](FleetConfig& f) { f.defaults.incident_open_fraction = 1.0; }) == 0);
  CHECK(one([](FleetConfig& f) { f.defaults.incident_open_fraction = 1.0000001; }) == 1);
  CHECK(one([](FleetConfig& f) { f.defaults.storm_open_factor = 1.0; }) == 0);
  CHECK(one([](FleetConfig& f) { f.defaults.storm_open_floor = 1; }) == 0);
  CHECK(one([](FleetConfig& f) { f.defaults.storm_open_floor = 0; }) == 1);
  CHECK(one([](FleetConfig& f) { f.window_resolution = f.incident_window; }) == 0);
  CHECK(one([](FleetConfig& f) { f.window_resolution = f.incident_window + 1ms; }) == 1);
}
