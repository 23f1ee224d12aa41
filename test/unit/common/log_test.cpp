// Tests presence/common/log.h: the line budget of device transition logs (issue 19 item 9), on a
// simulated clock.
#include "presence/common/log.h"

#include <doctest/doctest.h>

#include <string>

using presence::common::LineBudget;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

TEST_CASE("LineBudget: a burst, then per_second, the rest counted") {
  LineBudget b(/*per_second=*/20, /*burst=*/200);
  const Clock::time_point t0{};
  int written = 0;
  for (int i = 0; i < 1000; ++i) written += b.take(t0) ? 1 : 0;
  CHECK(written == 200);
  CHECK(b.suppressed_total() == 800);
  CHECK(b.take_suppressed() == 800);
  CHECK(b.take_suppressed() == 0);
  // 20 lines a second: at T-1 ms of the 50 ms a line earns, none; at T, one.
  CHECK_FALSE(b.take(t0 + milliseconds(49)));
  CHECK(b.take(t0 + milliseconds(50)));
  CHECK_FALSE(b.take(t0 + milliseconds(51)));
  // A minute of flood at 1,000 lines/s writes about 20/s, not 1,000/s (19,704 lines in 60 s
  // before).
  written = 0;
  for (int ms = 1000; ms < 61000; ++ms) written += b.take(t0 + milliseconds(ms)) ? 1 : 0;
  // 20/s over 60 s plus the 950 ms of credit earned since 51 ms: floor(60949 / 50).
  CHECK(written == 1218);
  // Quiet for a while: the burst is back, no more.
  written = 0;
  for (int i = 0; i < 300; ++i) written += b.take(t0 + std::chrono::hours(1)) ? 1 : 0;
  CHECK(written == 200);
}

TEST_CASE("log levels: one word each, read back; 'warning' is an alias of warn") {
  using presence::common::LogLevel;
  using presence::common::parse_log_level;
  using presence::common::to_string;
  for (const auto& [level, word] : presence::common::kLogLevelWords) {
    LogLevel out = LogLevel::Error;
    CHECK(std::string(to_string(level)) == word);
    CHECK(parse_log_level(word, out));
    CHECK(out == level);
  }
  LogLevel out = LogLevel::Debug;
  CHECK(parse_log_level("warning", out));
  CHECK(out == LogLevel::Warn);
  CHECK_FALSE(parse_log_level("WARN", out));
  CHECK_FALSE(parse_log_level("", out));
}

TEST_CASE("LogLimiter: one line per period at T-1 / T, the rest counted") {
  presence::common::LogLimiter lim(std::chrono::seconds(60));
  const Clock::time_point t0{};
  CHECK(lim.allow(t0));
  CHECK_FALSE(lim.allow(t0 + std::chrono::seconds(59)));
  CHECK_FALSE(lim.allow(t0 + milliseconds(59'999)));
  CHECK(lim.take_suppressed() == 2);
  CHECK(lim.allow(t0 + std::chrono::seconds(60)));
  CHECK(lim.take_suppressed() == 0);
}
