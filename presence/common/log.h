// The one log module of presenced (issue 12 step 3: there were two, ingest/log.* and store/log.h).
// Logging to stderr with levels, and rate limiting for repeated errors (STYLE.md habit 7: "log
// once, count"). A flood of malformed payloads must not turn into a flood of log lines.
//  - log(level, message): the service's leveled line ("<ISO time> <level> <message>").
//  - LogFn: how a room that must not know the app's logger (store, alert, ha) is handed one; the
//    default writes "presenced: <line>" to stderr.
//  - RateLimitedLog (thread-safe, by key), LogLimiter (one condition, one thread) and LineBudget
//    (a token bucket on a caller-given time): three ways to log once and count the rest.
#pragma once

#include <algorithm>
#include <atomic>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace presence::common {

enum class LogLevel : int { Debug = 0, Info = 1, Warn = 2, Error = 3 };

// The words of each level, in enum order: config key log.level, the log line itself.
inline constexpr std::array<std::pair<LogLevel, const char*>, 4> kLogLevelWords = {
    {{LogLevel::Debug, "debug"}, {LogLevel::Info, "info"}, {LogLevel::Warn, "warn"},
     {LogLevel::Error, "error"}}};
const char* to_string(LogLevel level);

// Parses "debug|info|warn|error" (and "warning" for warn); false on anything else.
bool parse_log_level(std::string_view text, LogLevel& out);

void set_log_level(LogLevel level);
LogLevel log_level();
void log(LogLevel level, std::string_view message);

// At most one line per key per interval; the next line says how many were suppressed.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::steady_clock::duration interval = std::chrono::seconds(10))
      : interval_(interval) {}
  void log(LogLevel level, const std::string& key, std::string_view message);

 private:
  struct Entry {
    std::chrono::steady_clock::time_point last{};
    std::uint64_t suppressed = 0;
  };
  std::chrono::steady_clock::duration interval_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
};

// A budget of log lines: `per_second` a second, up to `burst` at once (a token bucket). Pure:
// the caller passes the time. Device transition lines use it (issue 19 item 9: a junk-id flood
// wrote 19,704 transition lines in 60 s); what is left out is counted, never silently lost.
class LineBudget {
 public:
  // Integer nanoseconds of credit, so a line is earned exactly every 1/per_second.
  LineBudget(double per_second, double burst)
      : cost_(static_cast<std::int64_t>(1e9 / per_second)),
        cap_(static_cast<std::int64_t>(burst) * cost_),
        credit_(cap_) {}
  // True: write this line. False: it is counted in suppressed().
  bool take(std::chrono::steady_clock::time_point now) {
    if (started_ && now > last_)
      credit_ = std::min(cap_, credit_ + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             now - last_).count());
    if (!started_ || now > last_) last_ = now;
    started_ = true;
    if (credit_ >= cost_) {
      credit_ -= cost_;
      return true;
    }
    ++suppressed_;
    ++suppressed_total_;
    return false;
  }
  // Lines left out since the last call (for a summary line).
  std::uint64_t take_suppressed() { return std::exchange(suppressed_, 0); }
  std::uint64_t suppressed_total() const { return suppressed_total_; }

 private:
  std::int64_t cost_, cap_, credit_;
  bool started_ = false;
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t suppressed_ = 0;
  std::uint64_t suppressed_total_ = 0;
};

// Where the store, alert and ha rooms write their log lines: the app wires this to its logger.
// Called from several threads (the outbox writer and every sink thread): must be thread-safe.
// Callers rate-limit themselves.
using LogFn = std::function<void(std::string_view line)>;

// Writes "presenced: <line>\n" to stderr in one call.
void log_stderr(std::string_view line);

// Returns log if set, else log_stderr.
inline LogFn or_stderr(LogFn log) { return log ? std::move(log) : LogFn(log_stderr); }

// At most one line per period for a recurring condition; the lines held back are counted so the
// next line can say "(N more since)". Not thread-safe: keep one per thread or under a lock.
class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::steady_clock::duration period = std::chrono::minutes(1))
      : period_(period) {}
  bool allow(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) {
    if (!started_ || now - last_ >= period_) {
      started_ = true;
      last_ = now;
      return true;
    }
    ++suppressed_;
    return false;
  }
  // Lines held back since the last allowed one; resets the count.
  std::uint64_t take_suppressed() {
    const std::uint64_t s = suppressed_;
    suppressed_ = 0;
    return s;
  }

 private:
  std::chrono::steady_clock::duration period_;
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t suppressed_ = 0;
  bool started_ = false;
};

}  // namespace presence::common
