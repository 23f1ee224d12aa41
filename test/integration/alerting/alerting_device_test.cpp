// One device really dies: one page, one resolve (issue 5 must-show).
#include <doctest/doctest.h>

#include "test/integration/alerting/harness.h"

namespace presence::atest {

TEST_CASE("one device really dies: 1 trigger, then 1 resolve when it returns") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  Presenced p(broker.port(), pd.url());
  p.start();
  Sim sim(broker.port(), 50, "  - at: 3s\n    die: {devices: dev-000007, back_after: 7s}\n");
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 50; }, 15s), p.log());
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/device/dev-000007", 1, 20s), dump(pd.events()));
  REQUIRE_MESSAGE(pd.wait_events("resolve", "presence/device/dev-000007", 1, 20s), dump(pd.events()));
  // Quiet afterwards: nothing else pages.
  std::this_thread::sleep_for(2s);
  const auto events = pd.events();
  MESSAGE("pages: " << dump(events));
  CHECK(events.size() == 2);
  CHECK(pd.errors().empty());
  for (const auto& e : pd.errors()) MESSAGE(e);
  CHECK(events[0].cls == "device_offline");
}

}  // namespace presence::atest

namespace presence::atest {

std::string iso(std::chrono::system_clock::time_point t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

TEST_CASE("config silence (time-bounded) holds one site's page, the other site pages") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  const auto now = std::chrono::system_clock::now();
  o.extra = "  silences:\n    - match: {site: site-a}\n      starts: " + iso(now - 1h) +
            "\n      ends: " + iso(now + 1h) + "\n      comment: maintenance\n"
            "    - match: {site: site-b}\n      starts: " + iso(now - 2h) +
            "\n      ends: " + iso(now - 1h) + "\n      comment: over already\n";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  Sim sim(broker.port(), 50,
          "  - at: 3s\n    die: {count: 1, match: {site: site-a}}\n"
          "  - at: 3s\n    die: {count: 1, match: {site: site-b}}\n");
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 50; }, 15s), p.log());
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/device/", 1, 20s), dump(pd.events()) << p.log());
  std::this_thread::sleep_for(3s);
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.count("trigger", "") == 1);
  CHECK(p.metric("presence_alerts_silenced_total") >= 1);
  CHECK(pd.errors().empty());
}

TEST_CASE("corrupt snapshot: logged, counted, start empty; watchdog pings while healthy") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  test::MockHttpServer watchdog;
  PresencedOptions o;
  o.extra = "  watchdog:\n    url: " + watchdog.url("/ping") + "\n    interval: 300ms\n";
  Presenced p(broker.port(), pd.url(), o);
  std::filesystem::create_directories(p.store_dir());
  {
    std::ofstream f(p.store_dir() + "/snapshot.bin", std::ios::binary);
    f << "PRSNAPSH garbage, not a snapshot";
  }
  p.start();
  CHECK(p.metric("presence_snapshot_load_corrupt_total") == 1);
  CHECK(p.log().find("starting empty") != std::string::npos);
  CHECK(watchdog.wait_for_count(2, 10s));
  CHECK(p.metric(R"(presence_watchdog_pings_total{result="ok"})") >= 1);
  CHECK(pd.requests() == 0);
}

}  // namespace presence::atest
