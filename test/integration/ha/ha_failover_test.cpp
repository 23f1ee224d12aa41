// Issue 13 test 2: kill -9 of the leader, 10 times at random moments while devices die and come
// back: every trigger and resolve delivered, 0 lost, every device's last page a resolve,
// duplicates counted and <= 1 per failover. On failure it prints what each instance did, every
// run of it (HaPresenced::story: killed runs included).
#include <doctest/doctest.h>

#include <random>
#include <set>

#include "test/integration/ha/harness.h"

namespace presence::hatest {

TEST_CASE_FIXTURE(Pair, "2: kill -9 of the leader 10 times while devices die and return: 0 lost, dups <= 1 per failover") {
  REQUIRE(start_both() != nullptr);
  // 12 devices die one after another, 3 s apart, each back 5 s later: a page in flight or
  // pending at most moments of the kills below.
  constexpr int kDying = 12;
  std::string timeline;
  for (int i = 0; i < kDying; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "dev-%06d", 10 + i);
    timeline += "  - at: " + std::to_string(4 + 3 * i) + "s\n    die: {devices: " + id +
                ", back_after: 5s}\n";
  }
  // Taken before the simulator starts: the deaths below happen at or after sim_started + at.
  const auto sim_started = std::chrono::steady_clock::now();
  Sim sim(broker.port(), 30, timeline, "7");
  REQUIRE(wait_for([&] { return a.online() == 30 && b.online() == 30; }, 15s));
  auto standby_warm = std::chrono::steady_clock::now();  // when the current standby became warm
  std::mt19937 rng(20261204);
  std::uniform_int_distribution<int> pause_ms(300, 1500);
  constexpr int kFailovers = 10;
  std::chrono::milliseconds slowest{0};  // leader killed -> the other reports itself leader
  for (int k = 0; k < kFailovers; ++k) {
    HaPresenced* leader = wait_leader(a, b, 15s);
    REQUIRE_MESSAGE(leader != nullptr, a.log() << b.log());
    HaPresenced* other = leader == &a ? &b : &a;
    // Before each kill, wait (bounded) until every death the current standby missed while it
    // warmed up (restarted, in restart grace) is paged and resolved by the leader. That is the
    // moment the standby, whose view lagged, holds its own late trigger for such a death: decided
    // more than match_window after the leader's, its resolve covered by the leader's resolve.
    // Killing the leader then made the standby, as the new leader, send that trigger after the
    // resolve (an open incident for a device that is back; docs/ha.md "superseded by our own
    // later decision", role_test). Killing before the leader decided the resolve is the other
    // window: the new leader adopts the log's open page (ha_handoff_test 10 holds it there
    // deterministically).
    wait_for([&] {
      std::map<std::string, std::string> last;  // device id -> last action
      for (const auto& e : pd.events()) {
        std::vector<std::string> ids;
        if (e.dedup_key.rfind("presence/device/", 0) == 0) {
          ids = {e.dedup_key.substr(16)};
        } else if (e.details.contains("devices") && e.details["devices"].is_string()) {
          std::istringstream list(e.details["devices"].get<std::string>());
          for (std::string id; std::getline(list, id, ',');) ids.push_back(id);
        }
        for (const auto& id : ids) last[id] = e.action;
      }
      for (int i = 0; i < kDying; ++i) {
        if (sim_started + std::chrono::seconds(4 + 3 * i) >= standby_warm) continue;
        char id[16];
        std::snprintf(id, sizeof id, "dev-%06d", 10 + i);
        const auto it = last.find(id);
        if (it == last.end() || it->second != "resolve") return false;
      }
      return true;
    }, 20s, 100ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    const auto killed = std::chrono::steady_clock::now();
    leader->stop(SIGKILL);
    REQUIRE_MESSAGE(wait_for([&] { return other->leader(); }, 10s, 50ms), other->log());
    slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - killed));
    leader->start();  // back as the standby, with its outbox as the crash left it
    // A standby is a standby once it is warm: it sees the broker and its restart grace is over
    // (docs/ha.md "warm standby"). A failover during its warm-up is a double fault.
    REQUIRE_MESSAGE(wait_for([&] {
                      return leader->metric("presence_restart_grace_active") == 0 &&
                             leader->metric("presence_blind") == 0 && leader->online() >= 28;
                    }, 20s),
                    leader->log());
    standby_warm = std::chrono::steady_clock::now();
  }
  const std::string dev = "presence/device/";
  // What each instance did, every run of it (the log is appended across restarts).
  const auto missing = [&] { return a.story() + b.story(); };

  // Every death paged and every return resolved (last action resolve), on the device's own key
  // or inside a group page: two deaths whose pages come due within group_wait of each other (a
  // loaded machine, a page held over a takeover) are one page naming both, which is right.
  std::set<std::string> triggered;  // device ids named by at least one trigger
  const auto last_actions = [&] {
    std::map<std::string, std::vector<std::string>> members;  // dedup_key -> device ids
    std::map<std::string, std::string> last;                  // device id -> last action
    for (const auto& e : pd.events()) {
      auto& ids = members[e.dedup_key];
      if (e.dedup_key.rfind(dev, 0) == 0) {
        ids = {e.dedup_key.substr(dev.size())};
      } else if (e.action == "trigger" && e.details.contains("devices") &&
                 e.details["devices"].is_string()) {
        ids.clear();
        std::istringstream list(e.details["devices"].get<std::string>());
        for (std::string id; std::getline(list, id, ',');) ids.push_back(id);
      }
      for (const auto& id : ids) {
        last[id] = e.action;
        if (e.action == "trigger") triggered.insert(id);
      }
    }
    return last;
  };
  const auto device_id = [](int i) {
    char id[16];
    std::snprintf(id, sizeof id, "dev-%06d", 10 + i);
    return std::string(id);
  };
  REQUIRE_MESSAGE(wait_for(
                      [&] {
                        const auto last = last_actions();
                        for (int i = 0; i < kDying; ++i) {
                          const auto it = last.find(device_id(i));
                          if (!triggered.count(device_id(i)) || it == last.end() ||
                              it->second != "resolve")
                            return false;
                        }
                        return true;
                      },
                      60s, 200ms),
                  dump(pd.events()) << missing());
  std::this_thread::sleep_for(2s);
  const auto events = pd.events();
  const auto last = last_actions();
  for (int i = 0; i < kDying; ++i) {
    CHECK_MESSAGE(triggered.count(device_id(i)) == 1, device_id(i));
    const auto it = last.find(device_id(i));
    CHECK_MESSAGE((it != last.end() && it->second == "resolve"), device_id(i));
  }
  const auto dups = pd.duplicates();
  MESSAGE("pages: " << events.size() << ", duplicates: " << dups.size() << " over " << kFailovers
                    << " failovers");
  for (const auto& d : dups) MESSAGE(d);
  {
    bool failed = dups.size() > static_cast<std::size_t>(kFailovers);
    for (int i = 0; i < kDying; ++i) {
      const auto it = last.find(device_id(i));
      failed = failed || triggered.count(device_id(i)) != 1 || it == last.end() ||
               it->second != "resolve";
    }
    if (failed) MESSAGE("pages:\n" << dump(events) << missing());
  }
  CHECK(dups.size() <= static_cast<std::size_t>(kFailovers));
  // Issue 13: takeover within lease_ttl + 2 s (lease_ttl 2 s here; no restart grace: warm state).
  MESSAGE("slowest takeover: " << slowest.count() << " ms");
  CHECK(slowest <= 4000ms);
  CHECK(pd.errors().empty());
}

}  // namespace presence::hatest
