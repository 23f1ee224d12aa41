// The hand-off of a dead leader's pages (issue 13; docs/ha.md "Hand-off"): a page decided only by
// the leader, whose request had not succeeded when it died, reaches the receiver through the new
// leader even though the standby was cold (it never decided that page itself).
#include <doctest/doctest.h>

#include <memory>

#include "presence/ha/etcd.h"
#include "test/integration/ha/harness.h"

namespace presence::hatest {

namespace {
const std::string kDev = "presence/device/";

// The set-up both cases share: a leads alone with PagerDuty down (its first page stays in flight,
// retried), the fleet's timeline kills a device, and only then b starts: a warm follower that
// never saw that device alive, so it decides no page for it.
void cold_standby_behind_a_dead_sink(Pair& p, std::unique_ptr<Sim>& sim, const std::string& timeline) {
  p.a.start();
  REQUIRE_MESSAGE(wait_for([&] { return p.a.leader(); }, 15s), p.a.log());
  p.pd.set_down(true);
  sim = std::make_unique<Sim>(p.broker.port(), 20, timeline);
  REQUIRE_MESSAGE(wait_for([&] { return p.a.online() >= 19; }, 15s), p.a.log());
  REQUIRE_MESSAGE(wait_for([&] { return p.pd.requests() >= 1; }, 20s), p.a.log());
  p.b.start();
  REQUIRE_MESSAGE(wait_for([&] {
                    return p.b.follower() && p.b.metric("presence_restart_grace_active") == 0 &&
                           p.b.metric("presence_ha_peers") == 1;
                  }, 20s),
                  p.b.log());
}
}

TEST_CASE_FIXTURE(Pair, "8: leader killed with an undelivered page the cold standby never decided: sent once") {
  std::unique_ptr<Sim> sim;
  cold_standby_behind_a_dead_sink(*this, sim, "  - at: 3s\n    die: {devices: dev-000007}\n");
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

namespace presence::hatest {

// The lost resolve (ha_failover_test flaked this way): the standby never decided a device's
// death, the leader decided the trigger and then the resolve, queued *behind* the request in
// flight, and was killed. The new leader's own view has the device online all along: the resolve
// exists only in the dead leader's queue, so it must be in etcd from the moment it is queued.
TEST_CASE_FIXTURE(Pair, "9: leader killed with a resolve queued behind its trigger: the new leader sends both") {
  // The trigger stays in flight; the resolve (the device is back after 8 s) queues behind it.
  std::unique_ptr<Sim> sim;
  cold_standby_behind_a_dead_sink(*this, sim,
                                  "  - at: 3s\n    die: {devices: dev-000008, back_after: 8s}\n");
  // The device returns: the leader decides the resolve, queued behind the trigger in flight.
  REQUIRE_MESSAGE(wait_for([&] {
                    return a.metric("presence_alert_sink_depth{sink=\"pagerduty\"}") >= 2;
                  }, 30s),
                  a.log());
  CHECK(b.metric("presence_alert_sink_depth{sink=\"pagerduty\"}") == 0);  // b holds nothing
  // Both pages are in etcd: the one in flight and the one queued behind it.
  presence::ha::Etcd client({etcd.url()}, 2000ms);
  const auto sending = [&] {
    const auto kvs = client.range("/presenced/sending/", true);
    return kvs ? kvs->size() : std::size_t{999};
  };
  CHECK(sending() == 2);
  a.stop(SIGKILL);
  REQUIRE_MESSAGE(wait_for([&] { return b.leader(); }, 10s), b.log());
  pd.set_down(false);
  REQUIRE_MESSAGE(pd.wait_events("resolve", kDev + "dev-000008", 1, 20s),
                  dump(pd.events()) << b.log());
  std::this_thread::sleep_for(2s);  // nothing more follows
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.count("trigger", kDev + "dev-000008") == 1);
  CHECK(pd.count("resolve", kDev + "dev-000008") == 1);
  const auto events = pd.events();
  REQUIRE(!events.empty());
  CHECK(events.back().action == "resolve");  // PagerDuty ends in the last state
  CHECK(pd.errors().empty());
  CHECK(b.metric("presence_ha_handed_off_total") >= 2);
  CHECK(sending() == 0);  // each record deleted once its page was delivered
}

}  // namespace presence::hatest

namespace presence::hatest {

// docs/ha.md "Adoption of the log's open pages": the gap the hand-off cannot close. The standby
// started after two devices died, so its own judgement has no page for either; the leader
// triggered both (delivered: no sending record is left). Then the leader is held (SIGSTOP): it
// sees nothing more and decides nothing more, while its lease (10 s here) keeps the standby a
// follower. dev-000011 comes back meanwhile: the resolve only the held leader could have decided.
// The leader is killed; the new leader adopts the log's two open pages: dev-000011 (back) is
// resolved at once, dev-000012 (still down) is not triggered again and is resolved once when it
// returns. Without the adoption neither resolve is ever sent.
struct LongLease : Pair {
  LongLease() : Pair(HaOptions{"10s", "20s", "60s"}) {}
};

TEST_CASE_FIXTURE(LongLease, "10: leader killed before deciding a resolve its standby never knew of: the new leader adopts the open pages") {
  a.start();
  REQUIRE_MESSAGE(wait_for([&] { return a.leader(); }, 15s), a.story());
  // dev-000011 dies at 2 s and is back at 20 s; dev-000012 dies at 5 s (a page of its own: due
  // 3 s after the first, well past group_wait) and is back at 34 s.
  const auto sim_start = std::chrono::steady_clock::now();
  Sim sim(broker.port(), 20,
          "  - at: 2s\n    die: {devices: dev-000011, back_after: 18s}\n"
          "  - at: 5s\n    die: {devices: dev-000012, back_after: 29s}\n");
  const std::string k11 = kDev + "dev-000011", k12 = kDev + "dev-000012";
  REQUIRE_MESSAGE(pd.wait_events("trigger", k11, 1, 20s), dump(pd.events()) << a.story());
  REQUIRE_MESSAGE(pd.wait_events("trigger", k12, 1, 20s), dump(pd.events()) << a.story());
  // The standby: a warm follower that never saw either device alive.
  b.start();
  REQUIRE_MESSAGE(wait_for([&] {
                    return b.follower() && b.metric("presence_restart_grace_active") == 0 &&
                           b.metric("presence_ha_peers") == 1;
                  }, 20s),
                  b.story());
  // Held at 14 s of the timeline (or later), so that its lease, last renewed at most
  // lease_ttl / 3 before, outlives dev-000011's return at 20 s.
  wait_for([&] { return std::chrono::steady_clock::now() >= sim_start + 14s; }, 20s, 50ms);
  REQUIRE_MESSAGE(b.state_of("dev-000011") != "online",
                  "dev-000011 came back before the leader was held: the machine is too slow for "
                  "this test's timeline\n" << b.story());
  a.signal(SIGSTOP);
  REQUIRE_MESSAGE(wait_for([&] { return b.state_of("dev-000011") == "online"; }, 20s), b.story());
  REQUIRE_MESSAGE(!b.leader(), "the standby took over before dev-000011 was back in its view\n"
                                   << b.story());
  a.stop(SIGKILL);
  REQUIRE_MESSAGE(wait_for([&] { return b.leader(); }, 15s), b.story());
  REQUIRE_MESSAGE(b.state_of("dev-000012") != "online",
                  "dev-000012 came back before the takeover: too slow for the timeline\n"
                      << b.story());
  // dev-000011: back, resolved by the new leader's own judgement, at once.
  REQUIRE_MESSAGE(pd.wait_events("resolve", k11, 1, 20s), dump(pd.events()) << b.story());
  CHECK_MESSAGE(b.log().find("ha: adopted 2 open page(s) of the notification log: 1 resolved now "
                             "(device back), 1 firing") != std::string::npos,
                b.story());
  // dev-000012: still down. Its page is open and stays open: no second trigger.
  CHECK(pd.count("trigger", k12) == 1);
  CHECK(pd.count("resolve", k12) == 0);
  // It returns: resolved once.
  REQUIRE_MESSAGE(pd.wait_events("resolve", k12, 1, 30s), dump(pd.events()) << b.story());
  std::this_thread::sleep_for(2s);  // nothing more follows
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.count("trigger", k11) == 1);
  CHECK(pd.count("resolve", k11) == 1);
  CHECK(pd.count("trigger", k12) == 1);
  CHECK(pd.count("resolve", k12) == 1);
  CHECK(pd.duplicates().empty());
  CHECK(pd.errors().empty());
  CHECK(b.metric("presence_ha_adopt_offered_total") >= 2);
}

}  // namespace presence::hatest
