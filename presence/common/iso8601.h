// Wall-clock timestamps as ISO 8601 UTC with milliseconds ("2026-11-21T12:00:00.123Z"), the one
// format of every payload we publish or send (retained device state, API answers, PagerDuty
// timestamps, the alert sink's log); and the one parser of the times users give us (the config
// file's alerts.silences and POST /v1/silences: issue 12, a silence that loads from the file must
// not be refused by the API). Header-only: every room that writes or reads one includes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

#include "presence/common/wall_time.h"

namespace presence::common {

inline std::string iso8601_utc_ms(std::int64_t unix_ms) {
  std::int64_t secs = unix_ms / 1000;
  std::int64_t ms = unix_ms % 1000;
  if (ms < 0) {  // before 1970: floor, not truncate
    ms += 1000;
    secs -= 1;
  }
  const auto tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[96];  // roomy: the compiler cannot bound tm_year
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

inline std::string iso8601_utc_ms(std::chrono::system_clock::time_point t) {
  return iso8601_utc_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

// What a user may write (docs/configuration.md "time", docs/api.md "Times"):
//   2026-11-21                       a date: midnight UTC
//   2026-11-21T12:00Z                minutes
//   2026-11-21T12:00:00Z             seconds, optionally a fraction: .5 or ,5 (milliseconds kept)
//   ...+01:00, ...-0130              an offset instead of Z
// A date-time must carry Z or an offset: a time in "local time" means something else on every
// machine. Not range-checked (parse_iso8601 is); nullopt when it is not such a time at all.
inline std::optional<std::chrono::sys_time<std::chrono::milliseconds>> parse_iso8601_unchecked(
    std::string_view s) {
  auto num = [&](std::size_t pos, std::size_t len) -> std::optional<int> {
    if (pos + len > s.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  const auto y = num(0, 4), mo = num(5, 2), d = num(8, 2);
  if (!y || !mo || !d || s.size() < 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{*y},
                                        std::chrono::month{static_cast<unsigned>(*mo)},
                                        std::chrono::day{static_cast<unsigned>(*d)}};
  if (!ymd.ok()) return std::nullopt;  // 2027-02-30 is a mistake, not March 2nd
  std::chrono::sys_time<std::chrono::milliseconds> t{std::chrono::sys_days{ymd}};
  if (s.size() == 10) return t;
  if (s[10] != 'T' && s[10] != 't') return std::nullopt;
  const auto h = num(11, 2), mi = num(14, 2);
  if (!h || !mi || s.size() < 16 || s[13] != ':' || *h > 23 || *mi > 59) return std::nullopt;
  t += std::chrono::hours(*h) + std::chrono::minutes(*mi);
  std::size_t pos = 16;
  if (pos < s.size() && s[pos] == ':') {
    const auto sec = num(pos + 1, 2);
    if (!sec || *sec > 60) return std::nullopt;
    t += std::chrono::seconds(*sec);
    pos += 3;
    if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {  // fraction: milliseconds kept
      ++pos;
      const std::size_t start = pos;
      int millis = 0;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (pos - start < 3) millis = millis * 10 + (s[pos] - '0');
        ++pos;
      }
      if (pos == start) return std::nullopt;
      for (std::size_t n = pos - start; n < 3; ++n) millis *= 10;
      t += std::chrono::milliseconds(millis);
    }
  }
  if (pos >= s.size()) return std::nullopt;  // no zone
  if ((s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) return t;
  if (s[pos] != '+' && s[pos] != '-') return std::nullopt;
  const int sign = s[pos] == '+' ? 1 : -1;
  const auto oh = num(pos + 1, 2);
  std::size_t mpos = pos + 3;
  if (mpos < s.size() && s[mpos] == ':') ++mpos;
  const auto om = num(mpos, 2);
  if (!oh || !om || mpos + 2 != s.size() || *oh > 23 || *om > 59) return std::nullopt;
  return t - sign * (std::chrono::hours(*oh) + std::chrono::minutes(*om));
}

// The same, in the one accepted range (wall_time.h): nullopt before 1970, clamped to 2200.
inline std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s) {
  const auto t = parse_iso8601_unchecked(s);
  if (!t) return std::nullopt;
  const auto ms = t->time_since_epoch().count();
  const auto secs = accept_wall_seconds(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  if (!secs) return std::nullopt;
  if (*secs == kMaxWallSeconds) return max_wall_time();
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

}  // namespace presence::common
