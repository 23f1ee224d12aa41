// TimerWheel against a trivially correct reference (a sorted multimap), with seeded random
// schedule/cancel/advance sequences, plus the boundaries: fire at T, not at T-1.
#include "presence/core/timer_wheel.h"

#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>
#include <utility>
#include <vector>

using presence::core::TimerWheel;

TEST_CASE("a timer fires at its expiry, not a millisecond before") {
  TimerWheel w(1000);
  w.reserve_ids(4);
  w.schedule(0, 1500);
  std::vector<std::pair<std::uint32_t, std::int64_t>> fired;
  auto fire = [&](std::uint32_t id, std::int64_t at) { fired.emplace_back(id, at); };
  w.advance(1499, fire);
  CHECK(fired.empty());
  CHECK(w.armed(0));
  w.advance(1500, fire);
  REQUIRE(fired.size() == 1);
  CHECK(fired[0] == std::make_pair(0u, std::int64_t{1500}));
  CHECK_FALSE(w.armed(0));
  w.advance(1501, fire);
  CHECK(fired.size() == 1);
}

TEST_CASE("cancel and re-schedule") {
  TimerWheel w(0);
  w.reserve_ids(2);
  w.schedule(0, 100);
  w.schedule(1, 200);
  w.cancel(0);
  w.schedule(1, 50);  // re-arm earlier
  CHECK(w.armed_count() == 1);
  std::vector<std::uint32_t> fired;
  w.advance(1000, [&](std::uint32_t id, std::int64_t at) {
    CHECK(at == 50);
    fired.push_back(id);
  });
  CHECK(fired == std::vector<std::uint32_t>{1});
  CHECK(w.armed_count() == 0);
}

TEST_CASE("past expiries fire on the next advance; fire may re-arm") {
  TimerWheel w(5000);
  w.reserve_ids(1);
  w.schedule(0, 10);  // already due
  int n = 0;
  w.advance(5000, [&](std::uint32_t id, std::int64_t) {
    if (++n < 3) w.schedule(id, 5000 + n * 1000);
  });
  CHECK(n == 1);
  w.advance(7000, [&](std::uint32_t id, std::int64_t at) {
    CHECK(at == 5000 + n * 1000);
    if (++n < 3) w.schedule(id, 5000 + n * 1000);
  });
  CHECK(n == 3);
}

TEST_CASE("expiries beyond the top level (> 2^32 ms) fire on time") {
  TimerWheel w(123);
  w.reserve_ids(3);
  const std::int64_t far = 123 + (std::int64_t{1} << 33) + 77;
  w.schedule(0, far);
  w.schedule(1, far + 1);
  w.schedule(2, std::int64_t{1} << 40);
  std::vector<std::pair<std::uint32_t, std::int64_t>> fired;
  auto fire = [&](std::uint32_t id, std::int64_t at) { fired.emplace_back(id, at); };
  w.advance(far - 1, fire);
  CHECK(fired.empty());
  w.advance(far, fire);
  REQUIRE(fired.size() == 1);
  w.advance(far + 1, fire);
  REQUIRE(fired.size() == 2);
  CHECK(fired[1].first == 1);
  w.advance(std::int64_t{1} << 41, fire);
  REQUIRE(fired.size() == 3);
  CHECK(fired[2] == std::make_pair(2u, std::int64_t{1} << 40));
}

TEST_CASE("random schedules, cancels and advances match a reference") {
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const std::uint32_t ids = 200;
    std::int64_t now = static_cast<std::int64_t>(rng() % 100000);
    TimerWheel w(now);
    w.reserve_ids(ids);
    std::map<std::uint32_t, std::int64_t> ref;  // id -> expiry
    for (int step = 0; step < 5000; ++step) {
      const auto op = rng() % 10;
      const auto id = static_cast<std::uint32_t>(rng() % ids);
      if (op < 5) {
        // Mix of delays across all levels, including past and beyond-top-level expiries.
        static const std::int64_t spans[] = {1, 300, 70000, 20000000, 5000000000LL, 20000000000LL};
        const std::int64_t span = spans[rng() % 6];
        const std::int64_t at = now - 5 + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(span));
        w.schedule(id, at);
        ref[id] = at;
      } else if (op < 7) {
        w.cancel(id);
        ref.erase(id);
      } else {
        static const std::int64_t jumps[] = {0, 1, 255, 256, 1000, 65536, 100000, 30000000, 6000000000LL};
        now += jumps[rng() % 9];
        std::multiset<std::pair<std::int64_t, std::uint32_t>> expected;
        for (auto [i, at] : ref) {
          if (at <= now) expected.emplace(at, i);
        }
        std::multiset<std::pair<std::int64_t, std::uint32_t>> got;
        std::int64_t last = INT64_MIN;
        bool ordered = true;
        w.advance(now, [&](std::uint32_t i, std::int64_t at) {
          got.emplace(at, i);
          // Fired in non-decreasing expiry order, except already-due ones at the start.
          if (at > w.now()) ordered = false;
          if (at >= last) last = at;
          ref.erase(i);
        });
        CHECK(ordered);
        REQUIRE(got == expected);
      }
      REQUIRE(w.armed_count() == ref.size());
    }
  }
}
