// Fleet events (issue 5 must-show): a broker restart is one page, not 500; naive mode shows the
// contrast; a 30 % drop is one incident page then one straggler alert naming the ones kept down.
#include <doctest/doctest.h>

#include "test/integration/alerting/harness.h"

namespace presence::atest {

// The one page is the Blind incident (docs/alert-policy.md): presenced could not see the broker
// for longer than blind_alert_after (1 s here, the outage lasts 3 s). The devices' wills mostly
// never reach presenced (its own connection closes with theirs) and the engine's restart grace
// takes everyone back, so no drop incident opens and no device pages. A restart shorter than
// blind_alert_after pages no one at all.
TEST_CASE("broker restart, 500 devices: 0 device pages, 1 incident trigger + 1 resolve") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.blind_alert_after = "1s";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  Sim sim(broker.port(), 500, "");
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 500; }, 20s), p.log());
  std::this_thread::sleep_for(3s);  // past presenced's own start-up restart grace
  broker.stop();
  std::this_thread::sleep_for(3s);  // the outage (scenario time, not an assertion)
  broker.start();
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 500; }, 30s), p.log());
  REQUIRE_MESSAGE(pd.wait_events("resolve", "presence/blind/", 1, 30s), dump(pd.events()));
  std::this_thread::sleep_for(3s);  // quiet: no late device pages
  const auto events = pd.events();
  MESSAGE("pages: " << dump(events));
  CHECK(pd.count("trigger", "presence/device/") == 0);
  CHECK(pd.count("trigger", "presence/blind/") == 1);
  CHECK(pd.count("resolve", "presence/blind/") == 1);
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
  std::this_thread::sleep_for(3s);
  broker.stop();
  std::this_thread::sleep_for(3s);  // the same outage as above
  broker.start();
  REQUIRE(wait_for([&] { return p.online() == 500; }, 30s));
  // PagerDuty gets one request at a time, each outcome fsynced (docs/alerts.md): a naive storm
  // of 500 pages takes tens of seconds to deliver.
  wait_for([&] { return pd.count("trigger", "presence/device/") >= 500; }, 60s, 200ms);
  const std::size_t triggers = pd.count("trigger", "presence/device/");
  MESSAGE("naive pages on a broker restart: " << triggers << " triggers, "
                                              << pd.count("resolve", "presence/device/")
                                              << " resolves");
  CHECK(triggers == 500);
  CHECK(pd.count("trigger", "presence/incident/") == 0);
  CHECK(pd.duplicates().empty());
  CHECK(pd.errors().empty());
}

}  // namespace presence::atest

namespace presence::atest {

// 30 % of the fleet drops at once (a load balancer), most come back, 10 are kept down: one
// incident page, then exactly one straggler alert naming the ones kept down.
TEST_CASE("30% dropped at once, 10 kept down: 1 incident page, then 1 straggler alert") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  Presenced p(broker.port(), pd.url());
  p.start();
  Sim sim(broker.port(), 500,
          "  - at: 4s\n    die: {count: 140, back_after: 3s-5s}\n"
          "  - at: 4s\n    die: {count: 10}\n");
  // The retained presence/fleet message carries the incident count.
  test::TempDir out;
  test::Process fleet_sub({test::find_program("mosquitto_sub"), "-p", std::to_string(broker.port()),
                           "-t", "presence/fleet"},
                          out.file("fleet.log"));
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 500; }, 20s), p.log());
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/stragglers/", 1, 45s), dump(pd.events()));
  std::this_thread::sleep_for(3s);  // quiet: nothing else pages
  const auto events = pd.events();
  MESSAGE("pages: " << dump(events));
  CHECK(pd.count("trigger", "presence/incident/") == 1);
  CHECK(pd.count("trigger", "presence/stragglers/") == 1);
  CHECK(test::read_file(out.file("fleet.log")).find(R"("incidents_open":1)") != std::string::npos);
  CHECK(pd.count("trigger", "presence/device/") == 0);
  CHECK(pd.count("trigger", "presence/group/") == 0);
  CHECK(pd.duplicates().empty());
  CHECK(pd.errors().empty());
  // The straggler alert names exactly the 10 devices kept down (from the sim's truth).
  std::set<std::string> dead;
  std::istringstream truth(sim.truth());
  std::string line;
  while (std::getline(truth, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == "die" && j["back_after_ms"].is_null())
      dead.insert(j.value("device", ""));
  }
  REQUIRE(dead.size() == 10);
  for (const auto& e : events)
    if (e.action == "trigger" && e.dedup_key.rfind("presence/stragglers/", 0) == 0) {
      const std::string text = e.summary + e.details.dump();
      for (const auto& id : dead) CHECK_MESSAGE(text.find(id) != std::string::npos, id);
    }
}

}  // namespace presence::atest
