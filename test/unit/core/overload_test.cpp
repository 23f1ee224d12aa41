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

// OverloadPager (issue 16, the "presenced overloaded" page of presence/app/alerting.cpp): one page
// when overload lasts alert_after without a break (T-1 no, T yes), none for a burst, resolved by
// the first batch that is caught up, and a break restarts the clock.
TEST_CASE("overload page: T-1 nothing, T one trigger, no repeat, resolved when it ends") {
  using Page = OverloadPager::Page;
  OverloadPager p(120'000ms);  // overload.alert_after default 2m
  CHECK_FALSE(p.observe(mono_ms(1'000), false).has_value());
  CHECK_FALSE(p.observe(mono_ms(10'000), true).has_value());  // overloaded since 10 s
  CHECK_FALSE(p.observe(mono_ms(129'999), true).has_value());  // T-1
  CHECK_FALSE(p.paged());
  CHECK(p.observe(mono_ms(130'000), true) == std::optional<Page>(Page::Trigger));  // T
  CHECK(p.paged());
  CHECK(p.overloaded_for(mono_ms(130'000)) == 120'000ms);
  CHECK_FALSE(p.observe(mono_ms(130'001), true).has_value());  // T+1: once only
  CHECK_FALSE(p.observe(mono_ms(600'000), true).has_value());
  CHECK(p.observe(mono_ms(600'001), false) == std::optional<Page>(Page::Resolve));
  CHECK_FALSE(p.paged());
  CHECK_FALSE(p.observe(mono_ms(600'002), false).has_value());  // resolved once
}

TEST_CASE("overload page: a burst shorter than alert_after pages nothing, resolves nothing") {
  OverloadPager p(120'000ms);
  CHECK_FALSE(p.observe(mono_ms(0), true).has_value());
  CHECK_FALSE(p.observe(mono_ms(119'999), true).has_value());
  CHECK_FALSE(p.observe(mono_ms(120'000), false).has_value());  // caught up at T: no page
  CHECK_FALSE(p.paged());
}

TEST_CASE("overload page: a break restarts the clock") {
  using Page = OverloadPager::Page;
  OverloadPager p(120'000ms);
  CHECK_FALSE(p.observe(mono_ms(0), true).has_value());
  CHECK_FALSE(p.observe(mono_ms(100'000), false).has_value());  // caught up after 100 s
  CHECK_FALSE(p.observe(mono_ms(110'000), true).has_value());   // behind again from 110 s
  CHECK_FALSE(p.observe(mono_ms(229'999), true).has_value());  // 0 + 120 s passed, but not 110 + 120
  CHECK(p.observe(mono_ms(230'000), true) == std::optional<Page>(Page::Trigger));
}

TEST_CASE("overload page: alert_after 0 pages with the first overloaded batch") {
  using Page = OverloadPager::Page;
  OverloadPager p(0ms);
  CHECK(p.observe(mono_ms(5), true) == std::optional<Page>(Page::Trigger));
  CHECK(p.observe(mono_ms(6), false) == std::optional<Page>(Page::Resolve));
}
