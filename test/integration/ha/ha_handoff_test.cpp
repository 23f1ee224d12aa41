// The hand-off of a dead leader's pages (issue 13; docs/ha.md "Hand-off"): a page decided only by
// the leader, whose request had not succeeded when it died, reaches the receiver through the new
// leader even though the standby was cold (it never decided that page itself).
#include <doctest/doctest.h>

#include "test/integration/ha/harness.h"

namespace presence::hatest {

namespace {
const std::string kDev = "presence/device/";
}

TEST_CASE_FIXTURE(Pair, "8: leader killed with an undelivered page the cold standby never decided: sent once") {
  a.start();
  REQUIRE_MESSAGE(wait_for([&] { return a.leader(); }, 15s), a.log());
  // PagerDuty is down: the leader decides the page, records it "sending" and keeps retrying.
  pd.set_down(true);
  Sim sim(broker.port(), 20, "  - at: 3s\n    die: {devices: dev-000007}\n");
  REQUIRE_MESSAGE(wait_for([&] { return a.online() >= 19; }, 15s), a.log());
  REQUIRE_MESSAGE(wait_for([&] { return pd.requests() >= 1; }, 20s), a.log());
  // The standby starts only now: it never saw dev-000007 alive, so it decides no page for it.
  b.start();
  REQUIRE_MESSAGE(wait_for([&] {
                    return b.follower() && b.metric("presence_restart_grace_active") == 0 &&
                           b.metric("presence_ha_peers") == 1;
                  }, 20s),
                  b.log());
  a.stop(SIGKILL);
  REQUIRE_MESSAGE(wait_for([&] { return b.leader(); }, 10s), b.log());
  pd.set_down(false);
  REQUIRE_MESSAGE(pd.wait_events("trigger", kDev + "dev-000007", 1, 20s),
                  dump(pd.events()) << b.log());
  std::this_thread::sleep_for(2s);  // nothing more follows
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.count("trigger", kDev + "dev-000007") == 1);
  CHECK(pd.duplicates().empty());
  CHECK(pd.errors().empty());
  CHECK(b.metric("presence_ha_handed_off_total") >= 1);
  // The log shows it sent now: a later takeover does not hand it off again.
  CHECK(b.log().find("ha: handing off") != std::string::npos);
}

}  // namespace presence::hatest
