// Logging to stderr with levels, and rate limiting for repeated errors (STYLE.md habit 7:
// "log once, count"). A flood of malformed payloads must not turn into a flood of log lines.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace presence::ingest {

enum class LogLevel : int { Debug = 0, Info = 1, Warn = 2, Error = 3 };

// Parses "debug|info|warn|error"; false on anything else.
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

}  // namespace presence::ingest
