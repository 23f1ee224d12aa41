#include "presence/ingest/log.h"

#include <cstdio>

#include "presence/ingest/output.h"

namespace presence::ingest {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::mutex g_out;

const char* level_word(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "?";
}
}  // namespace

bool parse_log_level(std::string_view text, LogLevel& out) {
  if (text == "debug") out = LogLevel::Debug;
  else if (text == "info") out = LogLevel::Info;
  else if (text == "warn" || text == "warning") out = LogLevel::Warn;
  else if (text == "error") out = LogLevel::Error;
  else return false;
  return true;
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) < g_level.load()) return;
  // Wall clock only to label the line for humans (STYLE.md habit 1).
  const std::string ts = iso8601(std::chrono::system_clock::now());
  std::lock_guard<std::mutex> lock(g_out);
  std::fprintf(stderr, "%s %-5s %.*s\n", ts.c_str(), level_word(level),
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
}

void RateLimitedLog::log(LogLevel level, const std::string& key, std::string_view message) {
  const auto now = std::chrono::steady_clock::now();
  std::uint64_t suppressed = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, inserted] = entries_.try_emplace(key);
    if (!inserted && now - it->second.last < interval_) {
      ++it->second.suppressed;
      return;
    }
    suppressed = it->second.suppressed;
    it->second.suppressed = 0;
    it->second.last = now;
  }
  if (suppressed == 0) {
    ingest::log(level, message);
  } else {
    ingest::log(level, std::string(message) + " (" + std::to_string(suppressed) +
                           " similar suppressed)");
  }
}

}  // namespace presence::ingest
