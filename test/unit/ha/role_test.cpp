// presence/ha/role.*: the HA pair's decisions with a fake clock (issue 13, docs/ha.md).
#include <doctest/doctest.h>

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

}  // namespace presence::ha
