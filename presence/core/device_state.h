// Per-device state: the packed record the engine keeps per device, and the pure rules the state
// machine is built from (event ordering by session, the adaptive heartbeat timeout). The
// transitions themselves live in engine.cpp, which owns timers and the fleet-level gates; see
// docs/core.md for the diagram.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "presence/core/config.h"
#include "presence/core/decision.h"
#include "presence/core/event.h"

namespace presence::core {

// One cache line, no pointers, no heap: a million devices are one 64 MB array (issue 2: <= 100 B
// per device beyond the id bytes, together with the 12-byte timer node and the id table). Aligned
// so that the hot path (a random device per event) touches exactly one line.
struct alignas(64) DeviceRecord {
  std::int64_t since = 0;          // current State began (ms)
  std::int64_t last_seen = kNever; // last proof of life (ms)
  std::int64_t changed_at = 0;     // underlying up/down last flipped (up since / down since)
  std::int64_t flap_clock = 0;     // time of the last flap history shift
  std::uint64_t session = 0;       // newest session id seen (valid if session_epoch matches)
  std::uint32_t heartbeat_mean_ms = 0;  // EWMA of heartbeat intervals, 0 = no sample yet
  std::uint32_t labels = 0;             // interned label set, 0 = none
  std::uint32_t flap_bits = 0;          // FlapDetector history
  std::uint32_t evidence_epoch = 0;     // restart grace epoch of the last fresh evidence, with
                                        // kRetainedEvidence when it was only a retained replay
  std::uint16_t session_epoch = 0;      // broker boot the session id belongs to
  State state = State::Unknown;
  Cause cause = Cause::Connected;
  DisconnectReason reason = DisconnectReason::Unknown;
  std::uint8_t heartbeat_samples = 0;   // saturating count of intervals seen
  std::uint8_t flags = 0;
  std::uint8_t device_class = 0;        // Config::device_classes index + 1, 0 = none (issue 14)

  // flags
  static constexpr std::uint8_t kUp = 1;             // latest evidence says connected/alive
  static constexpr std::uint8_t kSessionEnded = 2;   // `session` has disconnected
  static constexpr std::uint8_t kHeartbeats = 4;     // has sent heartbeats: judged by silence
  static constexpr std::uint8_t kChain = 8;          // last_seen was a heartbeat of this session
  static constexpr std::uint8_t kSilent = 16;        // down because of a heartbeat timeout
  static constexpr std::uint8_t kSeen = 32;          // ever had a (non-retained) event
  // A second live event (or restored from a snapshot): the id is a device, not a one-off
  // (forget_unconfirmed_after vs forget_after, issue 19 item 9).
  static constexpr std::uint8_t kConfirmed = 64;
  static constexpr std::uint8_t kForgotten = 128;    // index erased; record is a hole until reused

  static constexpr std::uint32_t kRetainedEvidence = 0x80000000u;
  static constexpr std::uint32_t kEpochMask = 0x7FFFFFFFu;

  bool has(std::uint8_t f) const { return (flags & f) != 0; }
  void set(std::uint8_t f, bool on) {
    flags = static_cast<std::uint8_t>(on ? (flags | f) : (flags & ~f));
  }
};

static_assert(sizeof(DeviceRecord) == 64, "DeviceRecord must stay one cache line");

// What to do with an event given the device's current session (Event::session comment): the
// outcome of checking the event's session against the one we know.
enum class SessionCheck : std::uint8_t {
  Accept,     // apply it
  Duplicate,  // same session, same news: drop
  Stale,      // belongs to an older session than the one we know: drop
  Takeover,   // disconnect of a session that was taken over: never a departure
};

// cur = the device's session id in the current broker boot (0 = none known), ended = that
// session has disconnected, s = the event's session (0 = unknown: order by arrival).
SessionCheck judge(EventKind kind, DisconnectReason reason, std::uint64_t cur, bool ended,
                   std::uint64_t s);

// Adaptive heartbeat timeout (docs/core.md "Heartbeat timeout"): factor x observed mean interval,
// clamped to [floor, ceiling]. With no interval seen yet the ceiling applies; until
// heartbeat_min_samples intervals, the mean is taken as max(heartbeat_default_interval, EWMA) so
// a young device is never judged stricter than the default.
inline Duration heartbeat_timeout(const Config& config, std::uint32_t mean_ms,
                                  std::uint32_t samples) {
  if (samples == 0) return config.heartbeat_timeout_ceiling;
  std::int64_t mean = mean_ms;
  if (samples < config.heartbeat_min_samples) {
    mean = std::max<std::int64_t>(mean, config.heartbeat_default_interval.count());
  }
  const auto t =
      static_cast<std::int64_t>(config.heartbeat_timeout_factor * static_cast<double>(mean));
  const std::int64_t lo = config.heartbeat_timeout_floor.count();
  const std::int64_t hi = std::max(lo, config.heartbeat_timeout_ceiling.count());
  return Duration{std::clamp<std::int64_t>(t, lo, hi)};
}

// EWMA update (alpha = 1/4) with the interval clamped to [1 ms, ceiling]; the first sample sets
// the mean.
std::uint32_t heartbeat_mean_update(const Config& config, std::uint32_t mean_ms,
                                    std::uint32_t samples, std::int64_t interval_ms);

}  // namespace presence::core
