// Fleet events (issue 5 must-show): a broker restart is one page, not 500; naive mode shows the
// contrast; a 30 % drop is one incident page then one straggler alert naming the ones kept down.
#include <doctest/doctest.h>

#include "test/integration/alerting/harness.h"

namespace presence::atest {

TEST_CASE("broker restart, 500 devices: 0 device pages, 1 incident trigger + 1 resolve") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  Presenced p(broker.port(), pd.url());
  p.start();
  Sim sim(broker.port(), 500, "");
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 500; }, 20s), p.log());
  std::this_thread::sleep_for(3s);  // past presenced's own start-up restart grace
  broker.restart();
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 500; }, 30s), p.log());
  REQUIRE_MESSAGE(pd.wait_events("resolve", "presence/incident/", 1, 30s), dump(pd.events()) << p.log());
  std::this_thread::sleep_for(3s);  // quiet: no late device pages
  const auto events = pd.events();
  MESSAGE("pages: " << dump(events));
  CHECK(pd.count("trigger", "presence/device/") == 0);
  CHECK(pd.count("trigger", "presence/incident/") == 1);
  CHECK(pd.count("resolve", "presence/incident/") == 1);
  CHECK(pd.count("trigger", "") == 1);
  CHECK(pd.errors().empty());
  for (const auto& e : pd.errors()) MESSAGE(e);
}

TEST_CASE("naive mode, broker restart, 500 devices: a page per device") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.mode = "naive";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  Sim sim(broker.port(), 500, "");
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 500; }, 20s), p.log());
  std::this_thread::sleep_for(1s);
  broker.restart();
  REQUIRE(wait_for([&] { return p.online() == 500; }, 30s));
  wait_for([&] { return pd.count("resolve", "presence/device/") >= 400; }, 30s, 200ms);
  std::this_thread::sleep_for(1s);
  const std::size_t triggers = pd.count("trigger", "presence/device/");
  MESSAGE("naive pages on a broker restart: " << triggers << " triggers, "
                                              << pd.count("resolve", "presence/device/")
                                              << " resolves");
  CHECK(triggers >= 400);
  CHECK(pd.count("trigger", "presence/incident/") == 0);
  CHECK(pd.duplicates().empty());
  CHECK(pd.errors().empty());
}

}  // namespace presence::atest
