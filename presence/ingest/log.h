// Logging to stderr with levels, and rate limiting for repeated errors (STYLE.md habit 7:
// "log once, count"). A flood of malformed payloads must not turn into a flood of log lines.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

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

}  // namespace presence::ingest
