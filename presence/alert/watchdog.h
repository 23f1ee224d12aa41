// Dead man's switch (alerts.watchdog.*): while presenced is healthy it pings a URL every interval;
// an outside monitor (healthchecks.io, Cronitor, an Opsgenie heartbeat...) pages when the pings
// stop. Covers what no alert from presenced itself can: presenced dead, wedged, or blind.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "presence/alert/http.h"
#include "presence/common/log.h"
#include "presence/common/result.h"

namespace presence::alert {

struct WatchdogConfig {
  std::string url;  // empty = no watchdog
  Duration interval{std::chrono::minutes(1)};
  Duration connect_timeout{std::chrono::seconds(5)};
  Duration timeout{std::chrono::seconds(10)};
};

struct WatchdogStats {
  std::uint64_t pings = 0;     // answered with 2xx
  std::uint64_t failures = 0;  // no answer or not 2xx
  std::uint64_t skipped = 0;   // not sent because healthy() said no
};

class Watchdog {
 public:
  // healthy() is called on the watchdog thread before each ping (so it must be thread-safe, e.g.
  // read atomics): no ping while it returns false, which is the point.
  Watchdog(WatchdogConfig config, std::function<bool()> healthy, common::LogFn log = {});
  ~Watchdog();  // stop()
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Starts pinging (the first ping at once). Fails (with why) for a non-http(s) URL or an
  // interval <= 0; succeeds without a thread when the URL is empty (watchdog off).
  common::Result<void> start();
  void stop();
  WatchdogStats stats() const;

 private:
  void run();

  WatchdogConfig config_;
  std::function<bool()> healthy_;
  common::LogFn log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> pings_{0}, failures_{0}, skipped_{0};
  std::thread thread_;
};

}  // namespace presence::alert
