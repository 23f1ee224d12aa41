// Unit tests for presence/tools/sim/fleet.*: parsing, exact mixes, and the reconnect behaviours
// with a seeded Rng (no clocks, no sleeps).
#include "presence/tools/sim/fleet.h"

#include <doctest/doctest.h>

#include <map>
#include <set>

using namespace presence::sim;

TEST_CASE("durations, ranges and rates") {
  CHECK(*parse_duration("250ms") == 250);
  CHECK(*parse_duration("30s") == 30'000);
  CHECK(*parse_duration("1.5s") == 1500);
  CHECK(*parse_duration("5m") == 300'000);
  CHECK(*parse_duration("2h") == 7'200'000);
  CHECK(*parse_duration("7") == 7000);
  CHECK(*parse_duration(" 0s ") == 0);
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration("10x"));
  CHECK_FALSE(parse_duration("s"));
  CHECK_FALSE(parse_duration(""));
  CHECK(parse_duration("10 parsecs").error.find("unit") != std::string::npos);

  auto r = parse_duration_range("30s-5m");
  REQUIRE(r);
  CHECK(r->lo == 30'000);
  CHECK(r->hi == 300'000);
  CHECK(parse_duration_range("2s")->hi == 2000);
  CHECK_FALSE(parse_duration_range("5m-30s"));
  CHECK_FALSE(parse_duration_range("x-1s"));

  CHECK(*parse_rate("5/s") == doctest::Approx(5));
  CHECK(*parse_rate("300/min") == doctest::Approx(5));
  CHECK(*parse_rate("36/h") == doctest::Approx(0.01));
  CHECK(*parse_rate("2") == doctest::Approx(2));
  CHECK_FALSE(parse_rate("5/day"));
  CHECK_FALSE(parse_rate("-1/s"));
  CHECK(format_duration(1500) == "1500ms");
  CHECK(format_duration(60'000) == "60s");
}

TEST_CASE("mixes parse with clear errors") {
  auto m = parse_mix("3.7.2:60,3.8.0-b3:5,07.06:35");
  REQUIRE(m);
  REQUIRE(m->entries.size() == 3);
  CHECK(m->entries[1].first == "3.8.0-b3");
  CHECK(m->entries[2].second == 35);
  CHECK(parse_mix("a")->entries[0].second == 1);  // bare name: weight 1
  CHECK_FALSE(parse_mix(""));
  CHECK_FALSE(parse_mix("a:0,b:0"));
  CHECK_FALSE(parse_mix("a:x"));
  CHECK_FALSE(parse_mix("a:-1"));
  CHECK_FALSE(parse_mix(":5"));
  CHECK(parse_mix("a:1,a:2").error.find("twice") != std::string::npos);
}

TEST_CASE("assign_mix gives exact proportions in a seeded order") {
  auto m = *parse_mix("x:60,y:5,z:35");
  Rng rng(42);
  auto a = assign_mix(m, 200, rng);
  std::map<std::size_t, int> count;
  for (auto i : a) ++count[i];
  CHECK(count[0] == 120);
  CHECK(count[1] == 10);
  CHECK(count[2] == 70);
  // Largest remainder: 3 devices over 1:1:1 -> one each; 2 over 1:1:1 -> two entries get one.
  Rng r2(1);
  auto b = assign_mix(*parse_mix("a,b,c"), 2, r2);
  CHECK(std::set<std::size_t>(b.begin(), b.end()).size() == 2);
  Rng again(42);
  CHECK(assign_mix(m, 200, again) == a);
  Rng other(43);
  CHECK(assign_mix(m, 200, other) != a);
}

TEST_CASE("build_fleet: ids, labels and behaviours") {
  FleetOptions o;
  o.devices = 100;
  o.first_id = 7;
  o.behaviour = *parse_mix("well_behaved:50,tight_loop:20,stuck:20,slow_joiner:10");
  auto f = build_fleet(o);
  REQUIRE(f);
  REQUIRE(f->size() == 100);
  CHECK((*f)[0].id == "dev-000007");
  CHECK((*f)[99].id == "dev-000106");
  std::map<Behaviour, int> n;
  for (auto& d : *f) ++n[d.behaviour];
  CHECK(n[Behaviour::WellBehaved] == 50);
  CHECK(n[Behaviour::TightLoop] == 20);
  CHECK(n[Behaviour::Stuck] == 20);
  CHECK(n[Behaviour::SlowJoiner] == 10);
  o.behaviour = *parse_mix("sleepy:1");
  CHECK(build_fleet(o).error.find("unknown behaviour 'sleepy'") != std::string::npos);
}

TEST_CASE("well-behaved: exponential backoff with equal jitter, capped") {
  ReconnectPolicy p;  // 1s initial, x2, 60s max
  Rng rng(7);
  for (int k = 0; k < 200; ++k) {
    auto d0 = reconnect_delay(Behaviour::WellBehaved, p, 0, true, rng);
    REQUIRE(d0);
    CHECK(*d0 >= 500);
    CHECK(*d0 <= 1000);
    auto d3 = *reconnect_delay(Behaviour::WellBehaved, p, 3, true, rng);
    CHECK(d3 >= 4000);
    CHECK(d3 <= 8000);
    auto d20 = *reconnect_delay(Behaviour::WellBehaved, p, 20, false, rng);
    CHECK(d20 >= 30'000);
    CHECK(d20 <= 60'000);
  }
  // Cap boundary: 2^5 = 32s < 60s, 2^6 = 64s is capped at 60s.
  Rng r(1);
  Millis hi5 = 0, hi6 = 0;
  for (int k = 0; k < 2000; ++k) {
    hi5 = std::max(hi5, *reconnect_delay(Behaviour::WellBehaved, p, 5, true, r));
    hi6 = std::max(hi6, *reconnect_delay(Behaviour::WellBehaved, p, 6, true, r));
  }
  CHECK(hi5 <= 32'000);
  CHECK(hi5 > 31'000);
  CHECK(hi6 <= 60'000);
  CHECK(hi6 > 59'000);
}

TEST_CASE("tight loop never backs off (incident 000)") {
  ReconnectPolicy p;
  p.tight_loop_delay = 50;
  Rng rng(3);
  for (std::uint32_t f : {0u, 1u, 10u, 1000u}) {
    auto d = reconnect_delay(Behaviour::TightLoop, p, f, true, rng);
    REQUIRE(d);
    CHECK(*d >= 0);
    CHECK(*d <= 50);
  }
  p.tight_loop_delay = 0;
  CHECK(*reconnect_delay(Behaviour::TightLoop, p, 5, true, rng) == 0);
}

TEST_CASE("stuck never reconnects after a lost session (incident 001), but retries before one") {
  ReconnectPolicy p;
  Rng rng(5);
  CHECK_FALSE(reconnect_delay(Behaviour::Stuck, p, 0, true, rng));
  CHECK_FALSE(reconnect_delay(Behaviour::Stuck, p, 3, true, rng));
  auto first = reconnect_delay(Behaviour::Stuck, p, 1, false, rng);
  REQUIRE(first);
  CHECK(*first >= 1000);
  CHECK(*first <= 2000);
}

TEST_CASE("slow joiner waits long after a loss, then backs off normally") {
  ReconnectPolicy p;
  p.slow_joiner_delay = {60'000, 300'000};
  Rng rng(9);
  for (int k = 0; k < 100; ++k) {
    auto d = *reconnect_delay(Behaviour::SlowJoiner, p, 0, true, rng);
    CHECK(d >= 60'000);
    CHECK(d <= 300'000);
  }
  auto retry = *reconnect_delay(Behaviour::SlowJoiner, p, 1, true, rng);
  CHECK(retry <= 2000);
  auto initial = *reconnect_delay(Behaviour::SlowJoiner, p, 0, false, rng);
  CHECK(initial <= 1000);
}

TEST_CASE("heartbeat jitter stays within +-jitter of the interval") {
  Rng rng(11);
  Millis lo = 1'000'000, hi = 0;
  for (int k = 0; k < 5000; ++k) {
    auto d = heartbeat_delay(30'000, 0.1, rng);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  CHECK(lo >= 27'000);
  CHECK(hi <= 33'000);
  CHECK(lo < 27'300);  // the jitter is really used
  CHECK(hi > 32'700);
  CHECK(heartbeat_delay(30'000, 0, rng) == 30'000);
  CHECK(heartbeat_delay(0, 0.5, rng) == 1);
}

TEST_CASE("Rng: uniform bounds and determinism") {
  Rng a(1), b(1);
  for (int k = 0; k < 100; ++k) CHECK(a.next() == b.next());
  Rng r(2);
  for (int k = 0; k < 1000; ++k) {
    auto v = r.uniform(3, 5);
    CHECK(v >= 3);
    CHECK(v <= 5);
    auto u = r.uniform01();
    CHECK(u >= 0.0);
    CHECK(u < 1.0);
    CHECK(r.exponential(10) > 0);
  }
  CHECK(r.uniform(5, 5) == 5);
  CHECK(r.uniform(5, 4) == 5);
}

TEST_CASE("matches, topics and payloads") {
  DeviceSpec d{"dev-000001", "07.06", "site-a", "gw-100", Behaviour::TightLoop};
  Match m;
  CHECK(matches(m, d));
  m.labels = {{"firmware", "07.06"}, {"behaviour", "tight_loop"}};
  CHECK(matches(m, d));
  m.labels.emplace_back("site", "site-b");
  CHECK_FALSE(matches(m, d));
  Match ids;
  ids.ids = {"dev-000002", "dev-000001"};
  CHECK(matches(ids, d));
  ids.ids = {"dev-000002"};
  CHECK_FALSE(matches(ids, d));

  CHECK(topic_for("devices/{id}/status", "d1") == "devices/d1/status");
  CHECK(topic_for("{id}/{id}", "ab") == "ab/ab");
  CHECK(status_payload(d, true, false) == "online");
  CHECK(status_payload(d, false, false) == "offline");
  CHECK(status_payload(d, true, true) ==
        R"({"v":1,"state":"online","firmware":"07.06","site":"site-a","model":"gw-100"})");
  DeviceSpec q{"x", "a\"b", "s\\", "m\n", Behaviour::Stuck};
  CHECK(status_payload(q, false, true) ==
        R"({"v":1,"state":"offline","firmware":"a\"b","site":"s\\","model":"m\n"})");
  CHECK(heartbeat_payload(3, true) == R"({"v":1,"seq":3})");
  CHECK(heartbeat_payload(3, false) == "3");
}
