#include "presence/core/overload.h"

#include <string>

namespace presence::core {

namespace {
std::string seconds(Duration d) {
  const auto ms = d.count();
  return std::to_string(ms / 1000) + "." + std::to_string((ms % 1000) / 100) + " s";
}
}  // namespace

std::optional<bool> OverloadDetector::observe(MonoTime now_time, const OverloadSample& s) {
  const std::int64_t now = to_ms(now_time);
  std::string fired;
  if (s.lag > config_.lag_limit) {
    fired = "ingest lag " + seconds(s.lag) + " > " + seconds(config_.lag_limit);
  } else if (s.stall > config_.lag_limit) {
    fired = "engine thread stalled " + seconds(s.stall) + " > " + seconds(config_.lag_limit);
  } else if (s.inbox_depth > config_.inbox_limit) {
    fired = "inbox depth " + std::to_string(s.inbox_depth) + " > " +
            std::to_string(config_.inbox_limit);
  }
  if (s.broker_dropped) {
    // A counter lower than the last one is a restarted broker: a new baseline, not a drop.
    if (dropped_ && *s.broker_dropped > *dropped_ && fired.empty()) {
      fired = "broker dropped " + std::to_string(*s.broker_dropped - *dropped_) + " messages";
    }
    dropped_ = s.broker_dropped;
  }
  if (s.probes_lost > probes_lost_ && fired.empty()) {
    fired = std::to_string(s.probes_lost - probes_lost_) + " own probe messages lost or late";
  }
  probes_lost_ = s.probes_lost;

  if (!fired.empty()) {
    last_signal_ = now;
    why_ = fired;
    if (!overloaded_) {
      overloaded_ = true;
      ++episodes_;
      return true;
    }
    return std::nullopt;
  }
  // Quiet: caught up once every signal stayed quiet for clear_after (T = last signal +
  // clear_after ends it; T - 1 does not).
  if (overloaded_ && now - last_signal_ >= config_.clear_after.count()) {
    overloaded_ = false;
    return false;
  }
  return std::nullopt;
}

}  // namespace presence::core
