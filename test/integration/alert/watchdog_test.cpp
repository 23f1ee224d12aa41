// alerts.watchdog: pings at the interval while healthy, none while unhealthy.
#include "presence/alert/watchdog.h"

#include <doctest/doctest.h>

#include <atomic>

#include "test/support/mock_http.h"
#include "test/support/process.h"

using namespace presence::alert;
using presence::test::MockHttpServer;
using namespace std::chrono_literals;

TEST_CASE("watchdog pings while healthy, stops while not, and counts failures") {
  MockHttpServer monitor;
  monitor.set_default({200, "OK"});
  std::atomic<bool> healthy{true};
  WatchdogConfig c;
  c.url = monitor.url("/ping/abc");
  c.interval = 50ms;
  Watchdog w(
      c, [&] { return healthy.load(); }, [](std::string_view) {});
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(w.start().ok());
  REQUIRE(monitor.wait_for_count(3, 5s));
  const auto reqs = monitor.requests();
  CHECK(reqs[0].path == "/ping/abc");
  CHECK(reqs[2].at - t0 >= 100ms);  // first at once, then one per interval, never faster

  healthy = false;
  REQUIRE(presence::test::wait_for([&] { return w.stats().skipped >= 2; }, 5s));
  const auto during = monitor.count();
  REQUIRE(presence::test::wait_for([&] { return w.stats().skipped >= 4; }, 5s));
  CHECK(monitor.count() <= during + 1);  // at most one ping that was already on its way

  monitor.set_default({503, "down"});
  healthy = true;
  REQUIRE(presence::test::wait_for([&] { return w.stats().failures >= 1; }, 5s));
  w.stop();
  CHECK(w.stats().pings >= 3);
}

TEST_CASE("watchdog: empty URL is off, a bad URL or interval is refused") {
  Watchdog off(WatchdogConfig{}, nullptr);
  CHECK(off.start().ok());
  WatchdogConfig bad;
  bad.url = "ftp://x";
  Watchdog w(bad, nullptr);
  const auto bad_url = w.start();
  CHECK_FALSE(bad_url.ok());
  CHECK(bad_url.error.find("alerts.watchdog.url") != std::string::npos);
  WatchdogConfig zero;
  zero.url = "http://127.0.0.1:1/";
  zero.interval = 0ms;
  Watchdog z(zero, nullptr);
  const auto bad_interval = z.start();
  CHECK_FALSE(bad_interval.ok());
  CHECK(bad_interval.error.find("interval") != std::string::npos);
}
