// Flap detector (presence/core/flap.*): Nagios weights, thresholds at T-1 / T / T+1, quiet decay.
#include "presence/core/flap.h"

#include <doctest/doctest.h>

using namespace presence::core;

namespace {
std::uint32_t newest(int k) { return k >= 32 ? 0xFFFFFFFFu : (1u << k) - 1; }
}  // namespace

TEST_CASE("weights: a history of only changes scores 1, none 0; recent changes weigh more") {
  Config c;
  FlapDetector f(c);
  CHECK(f.transitions() == 20);
  CHECK(f.step() == std::chrono::seconds(30));
  CHECK(f.share(0) == doctest::Approx(0.0));
  CHECK(f.share(newest(20)) == doctest::Approx(1.0));
  CHECK(f.share(1u) == doctest::Approx(1.25 / 20));          // newest
  CHECK(f.share(1u << 19) == doctest::Approx(0.75 / 20));    // oldest
  CHECK(f.observe(newest(20), true) == newest(20));          // bounded to the history
}

TEST_CASE("start threshold at T-1 / T / T+1 changes") {
  Config c;
  FlapDetector probe(c);
  // Put flap_high exactly at the share of the 9 newest changes.
  c.flap_high = probe.share(newest(9));
  FlapDetector f(c);
  CHECK_FALSE(f.starts(newest(8)));
  CHECK(f.starts(newest(9)));
  CHECK(f.starts(newest(10)));
  // The default 50 % needs 9 recent changes (51.5 %); 8 score 46.3 %.
  FlapDetector d(Config{});
  CHECK(d.share(newest(9)) == doctest::Approx(0.5151).epsilon(0.001));
  CHECK(d.share(newest(8)) == doctest::Approx(0.4632).epsilon(0.001));
  CHECK_FALSE(d.starts(newest(8)));
  CHECK(d.starts(newest(9)));
}

TEST_CASE("stop threshold at T-1 / T / T+1 and hysteresis between low and high") {
  Config c;
  FlapDetector probe(c);
  c.flap_low = probe.share(newest(5));
  FlapDetector f(c);
  CHECK(f.stops(newest(4)));
  CHECK(f.stops(newest(5)));
  CHECK_FALSE(f.stops(newest(6)));
  // Between low and high: neither starts nor stops (hysteresis).
  FlapDetector d(Config{});
  const std::uint32_t mid = newest(7);
  CHECK_FALSE(d.starts(mid));
  CHECK_FALSE(d.stops(mid));
}

TEST_CASE("quiet time shifts in no-change observations: the time bound") {
  FlapDetector f(Config{});
  // Ten newest changes need 14 quiet shifts (7 min at 30 s) to fall to <= 25 %.
  CHECK(f.quiet_shifts_to_stop(newest(10)) == 14);
  CHECK_FALSE(f.stops(f.quiet(newest(10), 13)));
  CHECK(f.stops(f.quiet(newest(10), 14)));
  CHECK(f.quiet_shifts_to_stop(0) == 0);
  // After a whole flap_window of quiet nothing is left.
  CHECK(f.quiet(newest(20), 20) == 0);
  std::int64_t clock = 1000;
  std::uint32_t bits = f.catch_up(newest(3), clock, 1000 + 30000 - 1);
  CHECK(bits == newest(3));
  CHECK(clock == 1000);
  bits = f.catch_up(bits, clock, 1000 + 30000);
  CHECK(bits == newest(3) << 1);
  CHECK(clock == 31000);
  bits = f.catch_up(bits, clock, 31000 + 10 * 60000);
  CHECK(bits == 0);
}

TEST_CASE("flap_history bounds: 2 (one transition) and 32 (31 transitions)") {
  Config c;
  c.flap_history = 2;
  FlapDetector two(c);
  CHECK(two.transitions() == 1);
  CHECK(two.share(1u) == doctest::Approx(1.0));
  CHECK(two.share(0) == doctest::Approx(0.0));
  CHECK(two.observe(1u, true) == 1u);
  c.flap_history = 32;
  FlapDetector big(c);
  CHECK(big.transitions() == 31);
  CHECK(big.share(0x7FFFFFFFu) == doctest::Approx(1.0));
  CHECK(big.share(0xFFFFFFFFu) == doctest::Approx(1.0));  // bit 31 is outside the history
  c.flap_history = 64;  // out of range: clamped (config_error rejects it before)
  CHECK(FlapDetector(c).transitions() == 31);
  CHECK_FALSE(config_error(c).empty());
}
