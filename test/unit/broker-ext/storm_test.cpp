#include "broker-ext/storm.h"

#include <doctest/doctest.h>

using namespace presence::broker_ext;

TEST_CASE("token bucket: burst at once, then one token per 1000/rate ms (T-1, T, T+1)") {
  TokenBucket b(4, 2, 1000);  // 4/s: one token every 250 ms, burst 2
  CHECK(b.try_take(1000));
  CHECK(b.try_take(1000));
  CHECK_FALSE(b.try_take(1000));
  CHECK_FALSE(b.try_take(1249));  // T-1
  CHECK(b.try_take(1250));        // T
  CHECK_FALSE(b.try_take(1251));  // T+1: the token was taken
  CHECK_FALSE(b.try_take(1499));
  CHECK(b.try_take(1500));
  // Idle for a long time: refills to burst, never beyond.
  CHECK(b.tokens_milli(100000) == 2000);
  CHECK(b.try_take(100000));
  CHECK(b.try_take(100000));
  CHECK_FALSE(b.try_take(100000));
}

TEST_CASE("token bucket: a clock that does not advance adds nothing") {
  TokenBucket b(1, 1, 0);
  CHECK(b.try_take(0));
  CHECK_FALSE(b.try_take(0));
  CHECK_FALSE(b.try_take(-5));
  CHECK(b.try_take(1000));
}

TEST_CASE("flap ban: max_count connects in a window are admitted, the next one bans") {
  FlapBan f(3, 1000, 5000, 100);
  CHECK(f.on_connect("d", 0) == FlapBan::Admission::admit);
  CHECK(f.on_connect("d", 100) == FlapBan::Admission::admit);
  CHECK(f.on_connect("d", 200) == FlapBan::Admission::admit);
  CHECK(f.on_connect("other", 200) == FlapBan::Admission::admit);  // per client id
  CHECK(f.on_connect("d", 999) == FlapBan::Admission::refuse_new_ban);  // 4th inside 1 s of t=0
  CHECK(f.banned_until("d") == 5999);
  CHECK(f.banned(999) == 1);
  // During the ban: refused, the ban is not extended (T-1 of the ban end).
  CHECK(f.on_connect("d", 5998) == FlapBan::Admission::refuse_banned);
  CHECK(f.banned_until("d") == 5999);
  // T: the ban is over and the history starts afresh.
  CHECK(f.on_connect("d", 5999) == FlapBan::Admission::admit);
  CHECK(f.banned(5999) == 0);
}

TEST_CASE("flap ban: window boundary — an attempt exactly window ms old no longer counts") {
  FlapBan f(2, 1000, 5000, 100);
  CHECK(f.on_connect("d", 0) == FlapBan::Admission::admit);
  CHECK(f.on_connect("d", 10) == FlapBan::Admission::admit);
  CHECK(f.on_connect("d", 999) == FlapBan::Admission::refuse_new_ban);  // T-1: t=0 still inside
  FlapBan g(2, 1000, 5000, 100);
  CHECK(g.on_connect("d", 0) == FlapBan::Admission::admit);
  CHECK(g.on_connect("d", 10) == FlapBan::Admission::admit);
  CHECK(g.on_connect("d", 1000) == FlapBan::Admission::admit);  // T: t=0 dropped, 2 in window
  CHECK(g.on_connect("d", 1009) == FlapBan::Admission::refuse_new_ban);  // t=10 still in
  FlapBan h(2, 1000, 5000, 100);
  CHECK(h.on_connect("d", 0) == FlapBan::Admission::admit);
  CHECK(h.on_connect("d", 10) == FlapBan::Admission::admit);
  CHECK(h.on_connect("d", 1000) == FlapBan::Admission::admit);
  CHECK(h.on_connect("d", 1010) == FlapBan::Admission::admit);  // T+1 style: t=10 dropped too
}

TEST_CASE("flap ban: the table is bounded; sweep frees ids whose window and ban are over") {
  FlapBan f(1, 1000, 2000, 2);
  CHECK(f.on_connect("a", 0) == FlapBan::Admission::admit);
  CHECK(f.on_connect("b", 0) == FlapBan::Admission::admit);
  CHECK(f.on_connect("c", 0) == FlapBan::Admission::untracked);  // full, nothing expired
  CHECK(f.on_connect("a", 500) == FlapBan::Admission::refuse_new_ban);
  CHECK(f.tracked() == 2);
  CHECK(f.sweep(999) == 1);  // b still inside its window, a banned
  CHECK(f.tracked() == 2);
  CHECK(f.sweep(1000) == 1);  // b's window over: dropped; a banned until 2500
  CHECK(f.tracked() == 1);
  CHECK(f.on_connect("c", 1000) == FlapBan::Admission::admit);
  CHECK(f.sweep(2500) == 0);
  CHECK(f.tracked() == 0);
}
