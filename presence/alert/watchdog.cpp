#include "presence/alert/watchdog.h"

namespace presence::alert {

Watchdog::Watchdog(WatchdogConfig config, std::function<bool()> healthy, common::LogFn log)
    : config_(std::move(config)),
      healthy_(std::move(healthy)),
      log_(common::or_stderr(std::move(log))) {}

Watchdog::~Watchdog() { stop(); }

common::Result<void> Watchdog::start() {
  using Started = common::Result<void>;
  if (thread_.joinable()) return {};
  if (config_.url.empty()) return {};
  if (config_.url.rfind("http://", 0) != 0 && config_.url.rfind("https://", 0) != 0)
    return Started::fail("alerts.watchdog.url '" + config_.url + "' is not an http(s) URL");
  if (config_.interval.count() <= 0) return Started::fail("alerts.watchdog.interval must be > 0");
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  return {};
}

void Watchdog::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

WatchdogStats Watchdog::stats() const { return {pings_.load(), failures_.load(), skipped_.load()}; }

void Watchdog::run() {
  HttpClient http;
  const HttpTimeouts timeouts{config_.connect_timeout, config_.timeout};
  const HttpRequest request{config_.url,
                            R"({"v":1,"service":"presenced","status":"ok"})",
                            {"Content-Type: application/json"}};
  common::LogLimiter fail_log;
  bool was_ok = true;
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next, [&] { return stopping_.load(); });
      if (stopping_) return;
    }
    // Fixed rate, not fixed delay: a slow endpoint does not stretch the interval.
    next += config_.interval;
    const auto now = std::chrono::steady_clock::now();
    if (next < now) next = now + config_.interval;
    if (healthy_ && !healthy_()) {
      ++skipped_;
      continue;
    }
    const HttpResponse r = http.post(request, timeouts, &stopping_);
    if (r.aborted) return;
    if (r.status >= 200 && r.status < 300) {
      ++pings_;
      if (!was_ok) log_("watchdog: pings to the dead man's switch succeed again");
      was_ok = true;
    } else {
      ++failures_;
      was_ok = false;
      if (fail_log.allow()) {
        log_("watchdog: ping failed (" +
             (r.status == 0 ? r.error : "HTTP " + std::to_string(r.status)) + ", " +
             std::to_string(failures_.load()) +
             " failures in total); the monitor will page if "
             "this continues");
      }
    }
  }
}

}  // namespace presence::alert
