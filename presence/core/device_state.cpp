#include "presence/core/device_state.h"

#include <algorithm>

namespace presence::core {

SessionCheck judge(EventKind kind, DisconnectReason reason, std::uint64_t cur, bool ended,
                   std::uint64_t s) {
  if (kind == EventKind::Disconnected && reason == DisconnectReason::Takeover) {
    // The broker closed the old connection because a newer one took its client id: the device is
    // connected (issue 2; STYLE.md habit 5: the old disconnect arrives after the new connect).
    return SessionCheck::Takeover;
  }
  if (s == 0 || cur == 0 || s > cur) return SessionCheck::Accept;  // by arrival, or a newer session
  if (s < cur) return SessionCheck::Stale;
  // Same session.
  switch (kind) {
    case EventKind::Connected: return ended ? SessionCheck::Stale : SessionCheck::Duplicate;
    case EventKind::Heartbeat: return ended ? SessionCheck::Stale : SessionCheck::Accept;
    case EventKind::Disconnected: return ended ? SessionCheck::Duplicate : SessionCheck::Accept;
    default: return SessionCheck::Accept;
  }
}

std::uint32_t heartbeat_mean_update(const Config& config, std::uint32_t mean_ms,
                                    std::uint32_t samples, std::int64_t interval_ms) {
  const std::int64_t x = std::clamp<std::int64_t>(
      interval_ms, 1, std::min<std::int64_t>(config.heartbeat_timeout_ceiling.count(), 0xFFFFFFFF));
  if (samples == 0 || mean_ms == 0) return static_cast<std::uint32_t>(x);
  const std::int64_t m = mean_ms;
  return static_cast<std::uint32_t>(std::max<std::int64_t>(1, m + (x - m) / 4));
}

}  // namespace presence::core
