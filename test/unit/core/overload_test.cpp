// OverloadDetector (presence/core/overload.h): each signal at its limit (T) and past it (T+1),
// the broker counter's baseline and reset, and the end after clear_after (T-1, T).
#include <doctest/doctest.h>

#include <chrono>

#include "presence/core/overload.h"

using namespace presence::core;
using namespace std::chrono_literals;

namespace {
OverloadSample lag(Duration d) {
  OverloadSample s;
  s.lag = d;
  return s;
}
OverloadSample dropped(std::uint64_t n) {
  OverloadSample s;
  s.broker_dropped = n;
  return s;
}
}  // namespace

TEST_CASE("ingest lag: at the limit healthy, 1 ms past it overloaded") {
  OverloadDetector o;  // lag_limit 2 s
  CHECK_FALSE(o.observe(mono_ms(0), lag(2000ms)).has_value());
  CHECK_FALSE(o.overloaded());
  CHECK(o.observe(mono_ms(1), lag(2001ms)) == std::optional<bool>(true));
  CHECK(o.overloaded());
  CHECK(o.why().find("ingest lag 2.0 s > 2.0 s") != std::string::npos);
  CHECK(o.episodes() == 1);
}

TEST_CASE("a stall of the engine thread: at the limit healthy, 1 ms past it overloaded") {
  OverloadDetector o;
  OverloadSample s;
  s.stall = 2000ms;
  CHECK_FALSE(o.observe(mono_ms(0), s).has_value());
  s.stall = 2001ms;
  CHECK(o.observe(mono_ms(1), s) == std::optional<bool>(true));
  CHECK(o.why() == "engine thread stalled 2.0 s > 2.0 s");
}

TEST_CASE("caught up only after clear_after without any signal") {
  OverloadConfig c;
  c.clear_after = 5s;
  OverloadDetector o(c);
  CHECK(o.observe(mono_ms(1000), lag(3s)) == std::optional<bool>(true));
  CHECK_FALSE(o.observe(mono_ms(3000), lag(3s)).has_value());  // signal again: clock from 3000
  CHECK_FALSE(o.observe(mono_ms(7999), OverloadSample{}).has_value());
  CHECK(o.overloaded());
  CHECK(o.observe(mono_ms(8000), OverloadSample{}) == std::optional<bool>(false));
  CHECK_FALSE(o.overloaded());
  CHECK_FALSE(o.observe(mono_ms(9000), OverloadSample{}).has_value());
}

TEST_CASE("inbox depth: at the limit healthy, one more overloaded") {
  OverloadConfig c;
  c.inbox_limit = 100;
  OverloadDetector o(c);
  OverloadSample s;
  s.inbox_depth = 100;
  CHECK_FALSE(o.observe(mono_ms(0), s).has_value());
  s.inbox_depth = 101;
  CHECK(o.observe(mono_ms(1), s) == std::optional<bool>(true));
  CHECK(o.why() == "inbox depth 101 > 100");
}

TEST_CASE("broker drop counter: the first value is a baseline, growth is overload, a reset is not") {
  OverloadDetector o;
  CHECK_FALSE(o.observe(mono_ms(0), dropped(5000)).has_value());  // dropped before we started
  CHECK_FALSE(o.observe(mono_ms(1), dropped(5000)).has_value());
  CHECK(o.observe(mono_ms(2), dropped(5001)) == std::optional<bool>(true));
  CHECK(o.why() == "broker dropped 1 messages");
  CHECK(o.observe(mono_ms(10'000), dropped(0)) == std::optional<bool>(false));  // restart: baseline
  CHECK_FALSE(o.observe(mono_ms(10'001), dropped(0)).has_value());
  CHECK(o.observe(mono_ms(10'002), dropped(3)) == std::optional<bool>(true));
}

TEST_CASE("lost probes: any new loss is overload; an unknown counter (no sample) is not") {
  OverloadDetector o;
  OverloadSample s;
  CHECK_FALSE(o.observe(mono_ms(0), s).has_value());
  s.probes_lost = 1;
  CHECK(o.observe(mono_ms(1), s) == std::optional<bool>(true));
  CHECK(o.why() == "1 own probe messages lost or late");
  CHECK_FALSE(o.observe(mono_ms(5000), s).has_value());  // same count: quiet, but < clear_after
  CHECK(o.observe(mono_ms(5001), s) == std::optional<bool>(false));
}
