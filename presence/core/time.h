// Time, typed. The core never reads a clock (STYLE.md habit 1): every event carries the steady
// time it was observed at, and tick(now) moves time forward. MonoClock deliberately has no now().
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

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

// The two "no time" values of int64 milliseconds, one meaning each (issue 12 step 3: there were
// three constants, two named kNever with opposite values).
// kNever: a moment that has not happened (a device never seen, never connected): before every
// real time, so "t - kNever" is huge and max() with a real time picks the real one.
inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();
// kNeverDue: a deadline that never comes (no timer, no flush): after every real time, so min()
// with a real deadline picks the real one.
inline constexpr std::int64_t kNeverDue = std::numeric_limits<std::int64_t>::max();

// Adapters (ingest, server, API backend) read std::chrono::steady_clock once per dispatch
// (habit 3) and convert it here. Nothing in presence/core calls mono_now(): the core takes the
// time as an argument (habit 1); it lives here only so the conversion has one owner.
inline MonoTime to_mono(std::chrono::steady_clock::time_point t) {
  return MonoTime(std::chrono::duration_cast<Duration>(t.time_since_epoch()));
}
inline MonoTime mono_now() { return to_mono(std::chrono::steady_clock::now()); }

// "90000ms" -> "1m30s", "0s" for zero: the one way a duration is written back to a user (config
// errors, --check-config, the reload log), the inverse of the config's parse_duration.
inline std::string format_duration(Duration d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  static constexpr std::pair<const char*, std::int64_t> units[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};
  for (const auto& [name, size] : units) {
    if (ms >= size) {
      out += std::to_string(ms / size) + name;
      ms %= size;
    }
  }
  return out;
}

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

// Steady time does not survive a restart and payloads want wall time: an anchor pairs one reading
// of both clocks (taken together, once) to convert between them. Wall time only labels what steady
// time decided (habit 1). Used by the retained output, the API backend and the snapshot store.
struct WallAnchor {
  std::chrono::system_clock::time_point wall{};
  MonoTime mono{};

  std::chrono::system_clock::time_point to_wall(MonoTime t) const {
    return wall + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - mono);
  }
  std::int64_t to_wall_ms(MonoTime t) const {
    const auto wall_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
    return wall_ms + (to_ms(t) - to_ms(mono));
  }
  MonoTime to_mono(std::int64_t wall_ms) const {
    const auto anchor_wall_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
    return mono + Duration{wall_ms - anchor_wall_ms};
  }
};

}  // namespace presence::core
