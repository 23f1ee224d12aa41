// The HA pair end to end (issue 13 tests 1, 3, 4, 5, 6): real etcd, two presenced, mosquitto,
// presence-sim, mock PagerDuty validating every request.
#include <doctest/doctest.h>

#include "test/integration/ha/harness.h"

namespace presence::hatest {

namespace {
const std::string kDev = "presence/device/";
}

TEST_CASE_FIXTURE(Pair, "1: a device dies: exactly 1 trigger and 1 resolve, sent by the leader only") {
  HaPresenced* leader = start_both();
  REQUIRE_MESSAGE(leader != nullptr, a.log() << b.log());
  HaPresenced* follower = leader == &a ? &b : &a;
  Sim sim(broker.port(), 20, "  - at: 3s\n    die: {devices: dev-000007, back_after: 6s}\n");
  REQUIRE_MESSAGE(wait_for([&] { return a.online() == 20 && b.online() == 20; }, 15s), a.log());
  REQUIRE_MESSAGE(pd.wait_events("trigger", kDev + "dev-000007", 1, 20s), dump(pd.events()));
  REQUIRE_MESSAGE(pd.wait_events("resolve", kDev + "dev-000007", 1, 20s), dump(pd.events()));
  // Both decided both pages; the follower's are settled from the log, never sent.
  REQUIRE(wait_for([&] { return follower->metric("presence_ha_sent_by_peer_total") >= 2; }, 10s));
  std::this_thread::sleep_for(1s);  // quiet afterwards
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.events().size() == 2);
  CHECK(pd.errors().empty());
  // Two per page: its record when queued, then "sending" before the request (docs/ha.md).
  CHECK(leader->metric("presence_ha_fenced_writes_total") == 4);
  CHECK(follower->metric("presence_ha_fenced_writes_total") == 0);
  CHECK(a.metric("presence_ha_peers") == 1);
  const auto status = nlohmann::json::parse(follower->body("/v1/ha"));
  CHECK(status["role"] == "follower");
  CHECK(status["leader"] == leader->name());
  CHECK(status["members"].size() == 2);
}

TEST_CASE_FIXTURE(Pair, "3: leader SIGSTOPped past its lease, then SIGCONT: nothing sent twice, it steps down") {
  HaPresenced* leader = start_both();
  REQUIRE(leader != nullptr);
  HaPresenced* other = leader == &a ? &b : &a;
  Sim sim(broker.port(), 20,
          "  - at: 4s\n    die: {devices: dev-000003, back_after: 8s}\n"
          "  - at: 5s\n    die: {devices: dev-000004, back_after: 8s}\n");
  REQUIRE(wait_for([&] { return a.online() == 20 && b.online() == 20; }, 15s));
  leader->signal(SIGSTOP);  // a GC pause, a VM stall: it decides nothing, renews nothing
  REQUIRE_MESSAGE(wait_for([&] { return other->leader(); }, 10s), other->log());
  REQUIRE_MESSAGE(pd.wait_events("trigger", kDev + "dev-000004", 1, 20s), dump(pd.events()));
  leader->signal(SIGCONT);  // resumes with both deaths in its own queue, and an expired lease
  REQUIRE_MESSAGE(pd.wait_events("resolve", kDev + "dev-000004", 1, 25s), dump(pd.events()));
  REQUIRE(wait_for([&] { return leader->follower(); }, 10s));
  // What it decided while catching up (its own view of the two deaths, seen late) stays held:
  // it is not the leader. Nothing it holds is sent while it follows.
  std::this_thread::sleep_for(3s);
  CHECK(leader->metric("presence_alert_requests_total{sink=\"pagerduty\",result=\"ok\"}") == 0);
  CHECK(leader->metric("presence_ha_fenced_writes_total") == 0);
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.duplicates().empty());
  CHECK(pd.count("trigger", kDev) == 2);
  CHECK(pd.count("resolve", kDev) == 2);
  CHECK(pd.errors().empty());
  CHECK(other->leader());
  CHECK(leader->log().find("ha: lease expired") != std::string::npos);
}

// A standby is reported down after 4 s instead of 60.
struct QuickPeerDown : Pair {
  QuickPeerDown() : Pair(options()) {}
  static HaOptions options() {
    HaOptions o;
    o.peer_down_after = "4s";
    return o;
  }
};

TEST_CASE_FIXTURE(QuickPeerDown, "4: standby killed: one 'peer not running' page after peer_down_after, resolved on return") {
  HaPresenced* leader = start_both();
  REQUIRE(leader != nullptr);
  HaPresenced* standby = leader == &a ? &b : &a;
  REQUIRE(wait_for([&] { return leader->metric("presence_ha_peers") == 1; }, 10s));
  const auto t0 = std::chrono::steady_clock::now();
  standby->stop(SIGKILL);  // its member key lives until its lease (2 s) runs out
  REQUIRE_MESSAGE(pd.wait_events("trigger", "presence/ha/", 1, 20s), dump(pd.events()) << leader->log());
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 4s);  // never before peer_down_after
  const auto events = pd.events();
  CHECK(events.back().cls == "ha_peer_down");
  CHECK(events.back().summary.find("'" + standby->name() + "' not running") != std::string::npos);
  standby->start();
  REQUIRE_MESSAGE(pd.wait_events("resolve", "presence/ha/", 1, 20s), dump(pd.events()));
  std::this_thread::sleep_for(1s);
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.count("trigger", "presence/ha/") == 1);
  CHECK(pd.count("resolve", "presence/ha/") == 1);
  CHECK(pd.errors().empty());
}

TEST_CASE_FIXTURE(Pair, "5: etcd killed: both fail open after fail_open_after; no page lost, duplicates bounded") {
  REQUIRE(start_both() != nullptr);
  Sim sim(broker.port(), 20, "  - at: 4s\n    die: {devices: dev-000005, back_after: 10s}\n");
  REQUIRE(wait_for([&] { return a.online() == 20 && b.online() == 20; }, 15s));
  etcd.stop(SIGKILL);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE_MESSAGE(pd.wait_events("trigger", kDev + "dev-000005", 1, 25s), dump(pd.events()) << a.log());
  // Nobody sends without a lease before fail_open_after (6 s) of failed requests.
  CHECK(std::chrono::steady_clock::now() - t0 >= 6s);
  CHECK(a.metric("presence_ha_role{role=\"fail_open\"}") == 1);
  CHECK(b.metric("presence_ha_role{role=\"fail_open\"}") == 1);
  REQUIRE_MESSAGE(pd.wait_events("resolve", kDev + "dev-000005", 1, 25s), dump(pd.events()));
  std::this_thread::sleep_for(1s);
  MESSAGE("pages: " << dump(pd.events()));
  // Both instances send on their own: each page at most twice, never lost.
  CHECK(pd.count("trigger", kDev) <= 2);
  CHECK(pd.count("resolve", kDev) <= 2);
  CHECK(pd.errors().empty());
  // etcd back: one leader again.
  etcd.start();
  CHECK(wait_leader(a, b, 20s) != nullptr);
}

TEST_CASE_FIXTURE(Pair, "6: rolling restart of both: no page") {
  HaPresenced* leader = start_both();
  REQUIRE(leader != nullptr);
  HaPresenced* standby = leader == &a ? &b : &a;
  Sim sim(broker.port(), 20, "");
  REQUIRE(wait_for([&] { return a.online() == 20 && b.online() == 20; }, 15s));
  // Standby first, then the leader (it hands over by revoking its lease), as an operator would.
  for (HaPresenced* p : {standby, leader}) {
    CHECK(p->stop() == 0);
    p->start();
    REQUIRE(wait_for([&] { return p->online() == 20; }, 20s));
    REQUIRE(wait_leader(a, b, 15s) != nullptr);
    REQUIRE(wait_for([&] { return a.metric("presence_ha_peers") == 1 && b.metric("presence_ha_peers") == 1; }, 10s));
  }
  std::this_thread::sleep_for(3s);
  MESSAGE("pages: " << dump(pd.events()));
  CHECK(pd.requests() == 0);
}

namespace {
// The retained message on topic ("" if none), read with mosquitto_sub.
std::string retained(const test::TempDir& dir, int port, const std::string& topic) {
  static int n = 0;
  const std::string out = dir.file("retained-" + std::to_string(++n) + ".txt");
  test::Process sub({test::find_program("mosquitto_sub"), "-h", "127.0.0.1", "-p",
                     std::to_string(port), "-t", topic, "-C", "1", "-W", "2", "--retained-only"},
                    out);
  sub.wait_exit(5000ms);
  const std::string got = test::read_file(out);
  return got.find('{') == std::string::npos ? std::string() : got;  // "Timed out": none
}
void clear_retained(const test::TempDir& dir, int port, const std::string& topic) {
  test::Process pub({test::find_program("mosquitto_pub"), "-h", "127.0.0.1", "-p",
                     std::to_string(port), "-t", topic, "-r", "-n"},
                    dir.file("pub.log"));
  pub.wait_exit(5000ms);
}
}  // namespace

TEST_CASE_FIXTURE(Pair, "7: only the leader publishes the retained output; a new leader restates it") {
  test::TempDir dir;
  HaPresenced* leader = start_both();
  REQUIRE(leader != nullptr);
  HaPresenced* follower = leader == &a ? &b : &a;
  Sim sim(broker.port(), 20, "");
  REQUIRE(wait_for([&] { return a.online() == 20 && b.online() == 20; }, 15s));
  REQUIRE_MESSAGE(wait_for([&] { return leader->metric("presence_published_total") >= 21; }, 10s),
                  leader->log());
  CHECK(retained(dir, broker.port(), "presence/devices/dev-000001").find("\"online\"") !=
        std::string::npos);
  // The follower judged the same 20 devices and published none of them.
  CHECK(follower->metric("presence_published_total") == 0);
  CHECK(follower->log().find("output: publishing the retained output") == std::string::npos);

  // The leader dies; its retained output is wiped (as a broker restart without persistence
  // would) before the follower can take over: only a restatement by the new leader brings it back.
  // Each instance has its own birth/will (presence/service/<name>, docs/topics.md).
  CHECK(retained(dir, broker.port(), "presence/service/a").find("\"online\"") != std::string::npos);
  CHECK(retained(dir, broker.port(), "presence/service/b").find("\"online\"") != std::string::npos);
  // ... and says its role (issue 13: peer health readable by anyone on the broker).
  const auto role_of = [&](const HaPresenced& p) {
    const auto j = nlohmann::json::parse(retained(dir, broker.port(), "presence/service/" + p.name()),
                                         nullptr, false);
    return j.is_object() ? j.value("role", std::string()) : std::string();
  };
  CHECK(role_of(*leader) == "leader");
  CHECK(role_of(*follower) == "follower");
  leader->stop(SIGKILL);
  clear_retained(dir, broker.port(), "presence/devices/dev-000001");
  clear_retained(dir, broker.port(), "presence/fleet");
  const std::string cleared = retained(dir, broker.port(), "presence/devices/dev-000001");
  CHECK_MESSAGE(cleared.empty(), cleared << follower->log());
  REQUIRE_MESSAGE(wait_for([&] { return follower->leader(); }, 15s), follower->log());
  REQUIRE_MESSAGE(wait_for([&] {
                    return retained(dir, broker.port(), "presence/devices/dev-000001")
                               .find("\"online\"") != std::string::npos;
                  }, 15s, 200ms),
                  follower->log());
  const auto fleet = nlohmann::json::parse(retained(dir, broker.port(), "presence/fleet"), nullptr,
                                           false);
  REQUIRE(fleet.is_object());
  CHECK(fleet["devices"] == 20);
  CHECK(follower->metric("presence_published_total") >= 21);
  CHECK(follower->log().find("output: publishing the retained output (HA leader); restating 20") !=
        std::string::npos);
  // The dead one's will marks it, and only it, offline.
  CHECK(wait_for([&] {
    return retained(dir, broker.port(), "presence/service/" + leader->name())
               .find("\"offline\"") != std::string::npos;
  }, 10s, 200ms));
  CHECK(retained(dir, broker.port(), "presence/service/" + follower->name())
            .find("\"online\"") != std::string::npos);
  // The new leader restated its role.
  CHECK(wait_for([&] { return role_of(*follower) == "leader"; }, 10s, 200ms));
}

}  // namespace presence::hatest
