// Where the store and alert rooms write their log lines. The app wires this to its logger; the
// default writes one line to stderr. Callers rate-limit themselves (HELPERS.md: "logged once
// (rate-limited) with a counter").
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

namespace presence::store {

// Called from several threads (the outbox writer and every sink thread): must be thread-safe.
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

}  // namespace presence::store
