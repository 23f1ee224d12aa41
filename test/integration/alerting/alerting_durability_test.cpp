// Durability (issue 5 must-show): presenced restarts (SIGTERM with snapshot, kill -9 mid storm)
// and a PagerDuty endpoint that throttles, fails and rejects.
#include <doctest/doctest.h>

#include "test/integration/alerting/harness.h"

namespace presence::atest {

TEST_CASE("presenced SIGTERM restart with snapshot: no pages; a device that died meanwhile is "
          "paged after the grace") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  Presenced p(broker.port(), pd.url());
  p.start();
  Sim sim(broker.port(), 100, "  - at: 9s\n    die: {devices: dev-000005}\n");
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 100; }, 15s), p.log());
  std::this_thread::sleep_for(2s);
  REQUIRE(p.stop(SIGTERM) == 0);
  // presenced is down while dev-000005 dies (sim time 9 s).
  REQUIRE(wait_for([&] { return sim.truth().find(R"("event":"die")") != std::string::npos; }, 15s));
  std::this_thread::sleep_for(1s);
  p.start();
  CHECK(p.log().find("snapshot: restored 100 device(s)") != std::string::npos);
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/device/dev-000005", 1, 30s),
                  dump(pd.events()) << p.log());
  std::this_thread::sleep_for(3s);  // quiet: nobody else pages
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.count("trigger", "") == 1);
  CHECK(pd.errors().empty());
}

TEST_CASE("PagerDuty answers 429, 500, then 202: delivered once; 400: dead-lettered, counted") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  pd.script({429, 500});  // the trigger: throttled, failed, then accepted
  Presenced p(broker.port(), pd.url());
  p.start();
  Sim sim(broker.port(), 20, "  - at: 3s\n    die: {devices: dev-000003, back_after: 9s}\n");
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 20; }, 15s), p.log());
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/device/dev-000003", 1, 30s), dump(pd.events()));
  CHECK(pd.requests() == 3);
  CHECK(pd.count("trigger", "") == 1);
  pd.script({400});  // the resolve: rejected for good
  REQUIRE(wait_for([&] {
    return p.metric(R"(presence_alerts_total{sink="pagerduty",result="dead_lettered"})") == 1;
  }, 30s));
  std::this_thread::sleep_for(2s);  // never retried
  CHECK(pd.requests() == 4);
  CHECK(p.metric(R"(presence_alerts_total{sink="pagerduty",result="sent"})") == 1);
  CHECK(p.metric("presence_outbox_depth") == 0);
  CHECK(pd.errors().empty());
}

// kill -9 in the middle of a storm (naive mode: 100 devices die, so 100 triggers and 100
// resolves, against a PagerDuty that answers slowly so the outbox is full at the kill). After the
// restart every dedup_key's transitions are delivered; duplicates are allowed only as
// at-least-once allows (the request in flight at the kill; a transition decided again because the
// snapshot was older than the outbox), never two different outcomes out of order.
TEST_CASE("kill -9 mid storm: after restart every transition delivered, none lost") {
  test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  PresencedOptions o;
  o.mode = "naive";
  Presenced p(broker.port(), pd.url(), o);
  p.start();
  Sim sim(broker.port(), 200, "  - at: 3s\n    die: {count: 100, back_after: 6s-8s}\n");
  REQUIRE_MESSAGE(wait_for([&] { return p.online() == 200; }, 15s), p.log());
  REQUIRE(pd.wait_events("trigger", "presence/device/", 20, 30s));
  REQUIRE(p.stop(SIGKILL) != 0);
  const std::size_t at_kill = pd.events().size();
  std::this_thread::sleep_for(1s);
  p.start();
  // Every one of the 100 dead devices: triggered, and finally resolved.
  std::set<std::string> dead;
  REQUIRE(wait_for([&] {
    dead.clear();
    std::istringstream truth(sim.truth());
    std::string line;
    while (std::getline(truth, line))
      if (line.find(R"("event":"die")") != std::string::npos) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object()) dead.insert(j.value("device", ""));
      }
    return dead.size() == 100;
  }, 10s));
  auto final_state = [&] {
    std::map<std::string, std::string> last;
    for (const auto& e : pd.events()) last[e.dedup_key] = e.action;
    return last;
  };
  REQUIRE_MESSAGE(wait_for([&] {
    auto last = final_state();
    for (const auto& id : dead)
      if (last["presence/device/" + id] != "resolve") return false;
    return true;
  }, 90s, 200ms), dump(pd.events()).substr(0, 4000) << p.log().substr(0, 4000));
  const auto dups = pd.duplicates();
  MESSAGE("delivered before the kill: " << at_kill << ", total accepted: " << pd.events().size()
                                        << ", duplicates (at-least-once): " << dups.size());
  for (const auto& d : dups) MESSAGE(d);
  for (const auto& id : dead) CHECK(pd.count("trigger", "presence/device/" + id) >= 1);
  CHECK(pd.count("trigger", "presence/device/") <= 100 + dups.size());
  CHECK(pd.errors().empty());
}

}  // namespace presence::atest
