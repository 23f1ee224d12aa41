// The wall-clock times presenced accepts from outside (the API, the config file), one range for
// every room (STYLE.md habit 11). Issue 19 item 5: `POST /v1/silences` with ends_at in 2300 was
// stored as 1715, because std::chrono::system_clock counts nanoseconds in 64 bits and overflows
// after 2262-04-11. A time before 1970 is refused (it can only be a mistake); one after
// kMaxWallTime is clamped to it, so "a silence until 2300" still means "for good".
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>

namespace presence::common {

// 1970-01-01T00:00:00Z and 2200-01-01T00:00:00Z in seconds since the epoch: well inside the
// range of a nanosecond system_clock and of every int64 millisecond sum we make with them.
inline constexpr std::int64_t kMinWallSeconds = 0;
inline constexpr std::int64_t kMaxWallSeconds = 7'258'118'400;
// The longest span (a silence's duration) we accept: 100 years.
inline constexpr std::int64_t kMaxSpanSeconds = std::int64_t{100} * 366 * 86'400;

// Seconds since the epoch into the accepted range: nullopt before 1970, clamped after 2200.
inline std::optional<std::int64_t> accept_wall_seconds(std::int64_t unix_seconds) {
  if (unix_seconds < kMinWallSeconds) return std::nullopt;
  return std::min(unix_seconds, kMaxWallSeconds);
}

inline std::chrono::system_clock::time_point max_wall_time() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(kMaxWallSeconds));
}

// t + span without overflow, clamped to max_wall_time(); span must be within kMaxSpanSeconds.
inline std::chrono::system_clock::time_point add_clamped(std::chrono::system_clock::time_point t,
                                                         std::chrono::milliseconds span) {
  const auto max = max_wall_time();
  if (t >= max) return max;
  const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(max - t);
  return span >= room ? max : t + span;
}

}  // namespace presence::common
