#include "presence/common/log.h"

#include <cstdio>

#include "presence/common/iso8601.h"

namespace presence::common {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::mutex g_out;

}  // namespace

const char* to_string(LogLevel level) {
  for (const auto& [l, word] : kLogLevelWords)
    if (l == level) return word;
  return "?";
}

bool parse_log_level(std::string_view text, LogLevel& out) {
  if (text == "warning") text = "warn";
  for (const auto& [l, word] : kLogLevelWords) {
    if (text == word) {
      out = l;
      return true;
    }
  }
  return false;
}

void log_stderr(std::string_view line) {
  std::string out = "presenced: ";
  out.append(line);
  out.push_back('\n');
  std::fwrite(out.data(), 1, out.size(), stderr);
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log(LogLevel level, std::string_view message) {
  if (static_cast<int>(level) < g_level.load()) return;
  // Wall clock only to label the line for humans (STYLE.md habit 1).
  const std::string ts = iso8601_utc_ms(std::chrono::system_clock::now());
  std::lock_guard<std::mutex> lock(g_out);
  std::fprintf(stderr, "%s %-5s %.*s\n", ts.c_str(), to_string(level),
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
    common::log(level, message);
  } else {
    common::log(level, std::string(message) + " (" + std::to_string(suppressed) +
                           " similar suppressed)");
  }
}

}  // namespace presence::common
