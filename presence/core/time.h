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

}  // namespace presence::core
