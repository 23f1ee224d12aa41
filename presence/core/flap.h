// Flap detector: Nagios-style weighted state-change share over the last flap_history
// observations, with start/stop hysteresis (flap_high / flap_low) and a time bound.
//
// History: a bit per transition between consecutive observations (bit 0 = newest), set when the
// observation changed up/down. Nagios weights recent changes more (0.75 oldest .. 1.25 newest)
// and divides by the number of transitions, so a history of only changes scores 1.0.
//
// Time bound (issue 2: rare, spread-out disconnects must never add up to a flap): time itself is
// an observation. Every flap_window / (flap_history - 1) without an observation shifts in a
// "no change", so any change leaves the history at most flap_window (plus one step) after it
// happened, and a flapping device that goes quiet decays below flap_low without new events.
//
// Observations are connects, departures and heartbeat timeouts (and a heartbeat that brings a
// device back). A heartbeat on an up device is not an observation: a device heartbeating every
// second would otherwise wash its own bounces out of the history.
#pragma once

#include <array>
#include <cstdint>

#include "presence/core/config.h"

namespace presence::core {

class FlapDetector {
 public:
  static constexpr std::uint32_t kMaxHistory = 32;  // observations; 31 transition bits
  // Shares are sums of doubles: compare with a tolerance so a share exactly at a threshold
  // (e.g. 0.5) counts as reaching it.
  static constexpr double kEpsilon = 1e-9;

  explicit FlapDetector(const Config& config);

  std::uint32_t transitions() const { return transitions_; }  // flap_history - 1
  Duration step() const { return step_; }                     // quiet time per no-change shift

  // Shift one observation into bits (changed = up/down differs from the previous observation).
  std::uint32_t observe(std::uint32_t bits, bool changed) const {
    return ((bits << 1) | (changed ? 1u : 0u)) & mask_;
  }
  // Shift n quiet observations.
  std::uint32_t quiet(std::uint32_t bits, std::int64_t n) const {
    return n >= 32 ? 0u : (bits << n) & mask_;
  }
  // Weighted share of changes in [0, 1].
  double share(std::uint32_t bits) const;
  bool starts(std::uint32_t bits) const { return share(bits) >= high_ - kEpsilon; }
  bool stops(std::uint32_t bits) const { return share(bits) <= low_ + kEpsilon; }
  // Quiet shifts needed until stops() holds (0 if it already does).
  std::int64_t quiet_shifts_to_stop(std::uint32_t bits) const;

  // Lazily apply the quiet shifts due between clock and now; advances clock by whole steps.
  std::uint32_t catch_up(std::uint32_t bits, std::int64_t& clock_ms, std::int64_t now_ms) const;

 private:
  std::uint32_t transitions_;
  std::uint32_t mask_;
  Duration step_;
  double high_;
  double low_;
  // share(bits) = sum of four byte-indexed tables: O(1), no loop over set bits (the flap stop
  // search evaluates up to flap_history shares per evaluation of a flapping device).
  std::array<std::array<double, 256>, 4> table_{};
};

}  // namespace presence::core
