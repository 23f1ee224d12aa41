// TimerWheel against a trivially correct reference (a sorted multimap), with seeded random
// schedule/cancel/advance sequences, plus the boundaries: fire at T, not at T-1.
#include "presence/core/timer_wheel.h"

#include <doctest/doctest.h>

#include <algorithm>
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

// Issue 16 item 4: re-arm without unlinking. A re-arm leaves a tombstone in the old slot and
// appends to the new one; the tests below pin what that must never change.

TEST_CASE("a timer re-armed many times fires once, at its last deadline (T-1, T, T+1)") {
  TimerWheel w(0);
  w.reserve_ids(2);
  // Re-armed every 10 ms, crossing level-0 and level-1 slots: 500 tombstones behind it.
  std::int64_t last = 0;
  for (int k = 0; k < 500; ++k) {
    last = 30000 + k * 10 + (k % 7) * 300;  // also moves back and forth between slots
    w.schedule(0, last);
  }
  w.schedule(1, last + 100000);  // keeps the slots it shared live (not freed whole)
  CHECK(w.armed_count() == 2);
  CHECK(w.expiry(0) == last);
  std::vector<std::pair<std::uint32_t, std::int64_t>> fired;
  auto fire = [&](std::uint32_t id, std::int64_t at) { fired.emplace_back(id, at); };
  w.advance(last - 1, fire);
  CHECK(fired.empty());
  w.advance(last, fire);
  REQUIRE(fired.size() == 1);
  CHECK(fired[0] == std::make_pair(0u, last));
  w.advance(last + 1, fire);
  CHECK(fired.size() == 1);
  w.advance(last + 200000, fire);
  REQUIRE(fired.size() == 2);
  CHECK(fired[1].first == 1u);
}

TEST_CASE("stale entries never fire: earlier deadlines left behind, cancelled timers") {
  TimerWheel w(0);
  w.reserve_ids(4);
  w.schedule(3, 100);    // keeps the slot of 100 live, so the stale entries stay in it
  w.schedule(0, 100);
  w.schedule(0, 5000);   // the entry for 100 is stale
  w.schedule(1, 100);
  w.cancel(1);           // and so is this one
  w.schedule(2, 100);
  w.schedule(2, 70000);  // level 2: stale at 100
  w.schedule(2, 100);    // back to the slot it left: a new entry, the old one stays stale
  CHECK(w.entries() == 6);
  std::vector<std::pair<std::uint32_t, std::int64_t>> fired;
  auto fire = [&](std::uint32_t id, std::int64_t at) { fired.emplace_back(id, at); };
  w.advance(99, fire);
  CHECK(fired.empty());
  w.advance(100, fire);
  REQUIRE(fired.size() == 2);
  std::sort(fired.begin(), fired.end());
  CHECK(fired[0] == std::make_pair(2u, std::int64_t{100}));
  CHECK(fired[1] == std::make_pair(3u, std::int64_t{100}));
  w.advance(4999, fire);
  CHECK(fired.size() == 2);
  w.advance(5000, fire);
  REQUIRE(fired.size() == 3);
  CHECK(fired[2] == std::make_pair(0u, std::int64_t{5000}));
  w.advance(100000, fire);
  CHECK(fired.size() == 3);
  CHECK(w.armed_count() == 0);
  CHECK(w.entries() == 0);
}

TEST_CASE("compaction bounds the tombstones and keeps every live timer") {
  // 20,000 timers re-armed 30 times each, in an order that leaves live entries spread over many
  // slots among tombstones: without compaction the slots would hold ~600,000 entries.
  const std::uint32_t ids = 20000;
  TimerWheel w(0);
  w.reserve_ids(ids);
  std::vector<std::int64_t> expiry(ids);
  std::uint64_t x = 12345;
  auto rnd = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  std::size_t most = 0;
  for (int round = 0; round < 30; ++round) {
    for (std::uint32_t id = 0; id < ids; ++id) {
      // Deadlines 1 s .. 20 min ahead: levels 1 and 2; a tenth never re-armed after round 0.
      if (round > 0 && id % 10 == 0) continue;
      expiry[id] = 1000 + static_cast<std::int64_t>(rnd() % 1200000);
      w.schedule(id, expiry[id]);
      most = std::max(most, w.entries());
      REQUIRE(2 * w.entries() <= 3 * w.armed_count() + TimerWheel::kCompactSlack);
    }
  }
  MESSAGE("most entries held " << most << " for " << ids << " timers");
  CHECK(w.armed_count() == ids);
  for (std::uint32_t id = 0; id < ids; ++id) CHECK(w.expiry(id) == expiry[id]);
  // Every live timer fires exactly once, at its deadline.
  std::vector<int> count(ids, 0);
  std::size_t wrong = 0;
  w.advance(2000000, [&](std::uint32_t id, std::int64_t at) {
    ++count[id];
    if (at != expiry[id] || at > w.now()) ++wrong;
  });
  CHECK(wrong == 0);
  CHECK(std::count(count.begin(), count.end(), 1) == static_cast<std::ptrdiff_t>(ids));
  CHECK(w.armed_count() == 0);
  CHECK(w.entries() == 0);
}

TEST_CASE("re-arming from inside fire: due again fires again in the same advance, once each") {
  TimerWheel w(0);
  w.reserve_ids(64);
  for (std::uint32_t id = 0; id < 64; ++id) w.schedule(id, 10);
  std::vector<int> count(64, 0);
  w.advance(10, [&](std::uint32_t id, std::int64_t) {
    // The first visit of each id re-arms it due now (the engine never arms into the past, but
    // the wheel allows it); an even id also cancels its odd neighbour if that has not fired yet
    // (its entry is then ahead in the slot being swept, or re-armed: ties fire in any order).
    if (++count[id] == 1) {
      w.schedule(id, 5);
      if (id % 2 == 0 && count[id + 1] == 0) w.cancel(id + 1);
    }
  });
  for (std::uint32_t id = 0; id < 64; id += 2) {
    CHECK(count[id] == 2);
    // Cancelled before its turn (never fires) or fired before its neighbour (twice).
    CHECK((count[id + 1] == 0 || count[id + 1] == 2));
  }
  CHECK(w.armed_count() == 0);
  CHECK(w.entries() == 0);
}

TEST_CASE("random re-arms, cancels and advances with heavy re-arming match a reference") {
  // Like the test above the re-arm tests, with 10x more re-arms than advances so compaction and
  // freed slots run between every advance; checks the entry bound throughout.
  for (std::uint32_t seed = 1; seed <= 5; ++seed) {
    std::mt19937_64 rng(seed);
    const std::uint32_t ids = 3000;
    std::int64_t now = 0;
    TimerWheel w(now);
    w.reserve_ids(ids);
    std::map<std::uint32_t, std::int64_t> ref;
    for (int step = 0; step < 60000; ++step) {
      const auto op = rng() % 100;
      const auto id = static_cast<std::uint32_t>(rng() % ids);
      if (op < 90) {
        static const std::int64_t spans[] = {1, 300, 70000, 20000000};
        const std::int64_t at = now + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(spans[rng() % 4]));
        w.schedule(id, at);
        ref[id] = at;
      } else if (op < 99) {
        w.cancel(id);
        ref.erase(id);
      } else {
        now += static_cast<std::int64_t>(rng() % 100000);
        std::multiset<std::pair<std::int64_t, std::uint32_t>> expected, got;
        for (auto [i, at] : ref)
          if (at <= now) expected.emplace(at, i);
        w.advance(now, [&](std::uint32_t i, std::int64_t at) {
          got.emplace(at, i);
          ref.erase(i);
        });
        REQUIRE(got == expected);
      }
      REQUIRE(w.armed_count() == ref.size());
      REQUIRE(2 * w.entries() <= 3 * w.armed_count() + TimerWheel::kCompactSlack);
    }
  }
}

TEST_CASE("a flood of timers that is cancelled gives the pool back; the survivors still fire") {
  const std::uint32_t ids = 200000;
  TimerWheel w(0);
  w.reserve_ids(ids);
  for (std::uint32_t id = 0; id < ids; ++id) w.schedule(id, 1000 + (id % 5000) * 100);
  const std::size_t peak = w.bytes();
  // Keep one in 1000 (spread over the slots), cancel the rest.
  for (std::uint32_t id = 0; id < ids; ++id)
    if (id % 1000 != 0) w.cancel(id);
  CHECK(w.armed_count() == ids / 1000);
  CHECK(2 * w.entries() <= 3 * w.armed_count() + TimerWheel::kCompactSlack);
  MESSAGE("bytes at peak " << peak << ", after the cancels " << w.bytes());
  // The nodes (12 B per id) stay; the pool's 200,000 entries (~800 KB) go back.
  CHECK(w.bytes() + 500000 < peak);
  std::size_t fired = 0;
  w.advance(1000 + 5000 * 100, [&](std::uint32_t id, std::int64_t at) {
    CHECK(id % 1000 == 0);
    CHECK(at == 1000 + static_cast<std::int64_t>(id % 5000) * 100);
    ++fired;
  });
  CHECK(fired == ids / 1000);
}
