// Shared pieces of the alert integration tests.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "presence/alert/dispatcher.h"
#include "presence/core/decision.h"

namespace presence::test {

// Log lines from several delivery threads.
class SafeLogs {
 public:
  common::LogFn fn() {
    return [this](std::string_view l) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(l);
    };
  }
  bool any(const std::string& needle) const {
    std::lock_guard lock(mu_);
    for (const auto& l : lines_) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  std::string all() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& l : lines_) out += l + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

inline core::AlertIntent intent(
    const std::string& key, core::AlertIntent::Action action = core::AlertIntent::Action::Trigger) {
  core::AlertIntent i;
  i.action = action;
  i.type = core::AlertIntent::Type::DeviceOffline;
  i.severity = core::Severity::Error;
  i.dedup_key = key;
  i.summary = key + (action == core::AlertIntent::Action::Resolve ? " back online" : " offline");
  i.component = key;
  i.group = "site-a";
  i.cls = "device_offline";
  i.details = {{"reason", "last_will"}};
  i.at = core::mono_ms(1000);
  return i;
}

// Fast retries so tests finish in milliseconds, not minutes.
inline alert::SinkConfig fast(std::string name, std::string url) {
  alert::SinkConfig c = alert::sink_config(std::move(name), std::move(url));
  c.connect_timeout = std::chrono::milliseconds(500);
  c.timeout = std::chrono::milliseconds(2000);
  c.backoff.initial = std::chrono::milliseconds(20);
  c.backoff.max = std::chrono::milliseconds(200);
  c.backoff.jitter = 0.0;
  return c;
}

inline store::WallAnchor anchor_now() {
  return {std::chrono::system_clock::now(), core::mono_ms(1000)};
}

}  // namespace presence::test
