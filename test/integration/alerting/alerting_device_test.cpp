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
