// presence/ha/role.*: the HA pair's decisions with a fake clock (issue 13, docs/ha.md).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "presence/ha/role.h"

namespace presence::ha {
namespace {

using namespace std::chrono_literals;
MonoTime at(std::int64_t ms) { return core::mono_ms(ms); }

Timing timing() {
  Timing t;
  t.lease_ttl = 10s;
  t.safety = 1s;
  t.fail_open_after = 20s;
  t.peer_down_after = 30s;
  return t;
}

}  // namespace

TEST_CASE("a leader believes it leads until keep-alive sent + lease_ttl - safety, exactly") {
  Role r(timing());
  CHECK(r.role(at(0)) == RoleName::Follower);
  r.elected(at(1000), 42);
  CHECK(r.fence() == 42);
  CHECK(r.leader(at(1000)));
  CHECK(r.leader(at(9999)));    // T-1
  CHECK_FALSE(r.leader(at(10000)));  // T: 1000 + 10000 - 1000
  CHECK_FALSE(r.leader(at(10001)));  // T+1
  r.elected(at(4000), 42);  // keep-alive renewed
  CHECK(r.leader(at(12999)));
  CHECK_FALSE(r.leader(at(13000)));
}

TEST_CASE("stepping down (fenced write refused) ends leadership at once") {
  Role r(timing());
  r.elected(at(0), 7);
  r.step_down();
  CHECK(r.fence() == 0);
  CHECK(r.role(at(1)) == RoleName::Follower);
}

TEST_CASE("fail open only after every etcd request failed for fail_open_after, exactly") {
  Role r(timing());
  r.etcd_result(at(0), true);
  r.etcd_result(at(5000), false);  // first failure
  r.etcd_result(at(8000), false);  // later failures do not move the start
  CHECK(r.role(at(24999)) == RoleName::Follower);  // T-1
  CHECK(r.role(at(25000)) == RoleName::FailOpen);  // T
  CHECK(r.role(at(25001)) == RoleName::FailOpen);  // T+1
  r.etcd_result(at(26000), true);  // one answer ends it
  CHECK(r.role(at(26000)) == RoleName::Follower);
}

TEST_CASE("a leader resumed after a pause does not fail open: it never saw etcd fail") {
  Role r(timing());
  r.elected(at(0), 9);
  // SIGSTOP for 60 s: no request was made, so none failed.
  CHECK(r.role(at(60000)) == RoleName::Follower);
  CHECK_FALSE(r.fail_open(at(60000)));
}

TEST_CASE("a leader cut off from etcd stops leading before it could fail open") {
  Role r(timing());
  r.elected(at(0), 9);
  r.etcd_result(at(3000), false);
  CHECK(r.leader(at(8999)));
  CHECK(r.role(at(9000)) == RoleName::Follower);   // lease gone (locally), not yet fail-open
  CHECK(r.role(at(23000)) == RoleName::FailOpen);  // 3000 + 20000
}

TEST_CASE("peer down after peer_down_after, exactly; back at once") {
  PeerWatch p(30s);
  p.start(at(0));
  CHECK_FALSE(p.down(at(29999)));
  CHECK(p.down(at(30000)));  // never seen: counts from start
  p.seen(at(31000), "b");
  CHECK_FALSE(p.down(at(31000)));
  p.absent();  // gone at the next look
  CHECK_FALSE(p.down(at(60999)));
  CHECK(p.down(at(61000)));
  CHECK(p.last_name() == "b");
}

TEST_CASE("log record: encode/decode round trip, bounded history, garbage rejected") {
  LogRecord r;
  for (int i = 0; i < 10; ++i) {
    r.sending = LogItem{i % 2 == 0 ? "trigger" : "resolve", 1000 * i, "a"};
    mark_sent(r);
  }
  CHECK(r.sent.size() == LogRecord::kKeep);
  CHECK(r.sent.front().wall_ms == 2000);
  r.sending = LogItem{"trigger", 99, "b"};
  const auto d = decode(encode(r));
  REQUIRE(d);
  CHECK(d->sent.size() == LogRecord::kKeep);
  REQUIRE(d->sending);
  CHECK(d->sending->by == "b");
  CHECK_FALSE(decode("not json"));
  CHECK_FALSE(decode(R"({"v":2,"sent":[]})"));
  CHECK_FALSE(decode(R"({"v":1})"));
}

TEST_CASE("covered: same action within the window, or superseded by a later notification") {
  LogRecord r;
  r.sent.push_back({"trigger", 100000, "a"});
  const auto w = 2s;
  CHECK(covered(r, "trigger", 100000, w));
  CHECK(covered(r, "trigger", 102000, w));        // follower decided 2 s later: T
  CHECK_FALSE(covered(r, "trigger", 102001, w));  // T+1: a new episode
  CHECK(covered(r, "trigger", 98000, w));
  CHECK_FALSE(covered(r, "resolve", 100500, w));  // the resolve was not sent yet
  CHECK(covered(r, "resolve", 97999, w));         // superseded by the later trigger
  CHECK_FALSE(covered(r, "resolve", 98000, w));   // within the window: not superseded
  // A page being sent is not covered: its sender may have died before the request left.
  LogRecord s;
  s.sending = LogItem{"trigger", 100000, "a"};
  CHECK_FALSE(covered(s, "trigger", 100000, w));
  // Fast trigger+resolve: history keeps both, so the follower's trigger is not stuck behind it.
  r.sent.push_back({"resolve", 100500, "a"});
  CHECK(covered(r, "trigger", 100010, w));
  CHECK(covered(r, "resolve", 100400, w));
}

TEST_CASE("superseded_by_own: a lagging trigger whose own later resolve the log shows is not sent after that resolve") {
  // The leader sent trigger at 100 s and resolve at 104 s. Our view lagged (restart grace): we
  // decided the trigger at 102.3 s and our resolve at 104.5 s, both unsent.
  LogRecord r;
  r.sent.push_back({"trigger", 100000, "a"});
  r.sent.push_back({"resolve", 104000, "a"});
  const auto w = 2s;
  // Alone, our trigger is not covered: 2.3 s after the leader's, and the resolve is less than
  // the window after it. Sent, it would reopen the incident after its resolve.
  CHECK_FALSE(covered(r, "trigger", 102300, w));
  // Our own resolve behind it is covered (the leader's, 0.5 s apart): the trigger is superseded.
  CHECK(superseded_by_own(r, {{"resolve", 104500, "b"}}, w));
  // At the window's edge: our resolve 2 s after the leader's is still the same page (T) ...
  CHECK(superseded_by_own(r, {{"resolve", 106000, "b"}}, w));
  // ... 2.001 s after it is a notification the log does not show (T+1): ours to send, and so is
  // the trigger before it.
  CHECK_FALSE(superseded_by_own(r, {{"resolve", 106001, "b"}}, w));
  // Nothing of ours behind it, or a log that shows nothing sent: not superseded.
  CHECK_FALSE(superseded_by_own(r, {}, w));
  CHECK_FALSE(superseded_by_own(LogRecord{}, {{"resolve", 104500, "b"}}, w));
  // A new outage after the resolve: our trigger at 115 s, nothing later of ours: sent.
  CHECK_FALSE(covered(r, "trigger", 115000, w));
}

namespace {
SendingRecord sending(const std::string& by, std::int64_t wall_ms,
                      core::AlertIntent::Action a = core::AlertIntent::Action::Trigger) {
  SendingRecord r;
  r.sink = "pagerduty";
  r.by = by;
  r.wall_ms = wall_ms;
  r.intent.action = a;
  r.intent.type = core::AlertIntent::Type::FleetIncident;
  r.intent.severity = core::Severity::Critical;
  r.intent.dedup_key = "presence/device/dev-7";
  r.intent.summary = "device dev-7 is offline";
  r.intent.component = "dev-7";
  r.intent.group = "site-a";
  r.intent.cls = "device_offline";
  r.intent.details = {{"site", "site-a"}, {"firmware", "3.7.2"}};
  return r;
}
}  // namespace

TEST_CASE("sending record: the whole page round-trips; anything else is rejected") {
  const auto r = sending("a", 1'800'000'000'000);
  const auto d = decode_sending(encode(r));
  REQUIRE(d);
  CHECK(d->sink == "pagerduty");
  CHECK(d->by == "a");
  CHECK(d->wall_ms == 1'800'000'000'000);
  CHECK(d->intent.action == core::AlertIntent::Action::Trigger);
  CHECK(d->intent.type == core::AlertIntent::Type::FleetIncident);
  CHECK(d->intent.severity == core::Severity::Critical);
  CHECK(d->intent.dedup_key == r.intent.dedup_key);
  CHECK(d->intent.summary == r.intent.summary);
  CHECK(d->intent.component == "dev-7");
  CHECK(d->intent.group == "site-a");
  CHECK(d->intent.cls == "device_offline");
  CHECK(d->intent.details == r.intent.details);
  for (auto a : {core::AlertIntent::Action::Resolve, core::AlertIntent::Action::Notify}) {
    const auto x = decode_sending(encode(sending("b", 5, a)));
    REQUIRE(x);
    CHECK(x->intent.action == a);
  }
  auto with = [&](const std::string& field, const nlohmann::json& v) {
    auto j = nlohmann::json::parse(encode(r));
    j[field] = v;
    return decode_sending(j.dump());
  };
  CHECK_FALSE(decode_sending(""));
  CHECK_FALSE(decode_sending("{\"v\":2}"));
  CHECK_FALSE(with("v", 2));
  CHECK_FALSE(with("type", "no_such_type"));
  CHECK_FALSE(with("severity", "unknown"));
  CHECK_FALSE(with("a", "page"));
  CHECK_FALSE(with("dedup_key", ""));
  CHECK_FALSE(with("w", 0));
  CHECK_FALSE(with("details", nlohmann::json::array({1})));
}

TEST_CASE("hand-off: a dead sender's page is sent unless delivered, held, ours or older than the bound") {
  const std::int64_t t0 = 1'800'000'000'000;
  const Duration max_age = 1h, window = 2s;
  const std::int64_t age = 3'600'000;
  const auto r = sending("a", t0);
  LogRecord none;
  SUBCASE("age: sent at T-1, expired at T and T+1") {
    CHECK(decide_handoff(r, none, false, "b", t0 + age - 1, max_age, window) == Handoff::Send);
    CHECK(decide_handoff(r, none, false, "b", t0 + age, max_age, window) == Handoff::Expired);
    CHECK(decide_handoff(r, none, false, "b", t0 + age + 1, max_age, window) == Handoff::Expired);
  }
  SUBCASE("our outbox holds it: our own send replaces the record") {
    CHECK(decide_handoff(r, none, true, "b", t0 + 10, max_age, window) == Handoff::Held);
  }
  SUBCASE("our own record our outbox does not hold: settled before we crashed") {
    CHECK(decide_handoff(r, none, false, "a", t0 + 10, max_age, window) == Handoff::Stale);
  }
  SUBCASE("the log shows it sent (same action in the window, or a later notification)") {
    LogRecord same;
    same.sent.push_back({"trigger", t0 + 2000, "a"});
    CHECK(decide_handoff(r, same, false, "b", t0 + 10, max_age, window) == Handoff::Stale);
    LogRecord later;
    later.sent.push_back({"resolve", t0 + 2001, "b"});
    CHECK(decide_handoff(r, later, false, "b", t0 + 10, max_age, window) == Handoff::Stale);
    LogRecord older;
    older.sent.push_back({"trigger", t0 - 2001, "a"});  // an earlier outage of the same device
    CHECK(decide_handoff(r, older, false, "b", t0 + 10, max_age, window) == Handoff::Send);
  }
}

}  // namespace presence::ha
