// Time, typed. The core never reads a clock (STYLE.md habit 1): every event carries the steady
// time it was observed at, and tick(now) moves time forward. MonoClock deliberately has no now().
#pragma once

#include <chrono>
#include <cstdint>

namespace presence::core {

using Duration = std::chrono::milliseconds;

struct MonoClock {
  using rep = std::int64_t;
  using period = std::milli;
  using duration = Duration;
  using time_point = std::chrono::time_point<MonoClock, Duration>;
  static constexpr bool is_steady = true;
};

// Steady (monotonic) milliseconds. Adapters convert std::chrono::steady_clock once per dispatch
// (habit 3); tests and replay construct it from a simulated clock.
using MonoTime = MonoClock::time_point;

constexpr MonoTime mono_ms(std::int64_t ms) { return MonoTime{Duration{ms}}; }
constexpr std::int64_t to_ms(MonoTime t) { return t.time_since_epoch().count(); }

// a + b and a - b clamped to the int64 range. Times restored from a snapshot are input we do not
// control (issue 19 item 10: a crafted `since` of INT64_MIN/MAX overflowed when rebased).
constexpr std::int64_t add_sat(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (!__builtin_add_overflow(a, b, &r)) return r;
  return b > 0 ? INT64_MAX : INT64_MIN;
}
constexpr std::int64_t sub_sat(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (!__builtin_sub_overflow(a, b, &r)) return r;
  return b < 0 ? INT64_MAX : INT64_MIN;
}

}  // namespace presence::core
