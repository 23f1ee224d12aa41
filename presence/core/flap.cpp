#include "presence/core/flap.h"

#include <algorithm>
#include <bit>

namespace presence::core {

FlapDetector::FlapDetector(const Config& config)
    : transitions_(std::clamp<std::uint32_t>(config.flap_history, 3, kMaxHistory) - 1),
      mask_(transitions_ >= 32 ? 0xFFFFFFFFu : (1u << transitions_) - 1),
      step_(std::max<Duration>(Duration{1}, config.flap_window / transitions_)),
      high_(config.flap_high),
      low_(config.flap_low) {
  // Nagios: weight of the j-th oldest transition is 0.75 + 0.5 * j / (n - 1); the share is the
  // weighted count divided by n.
  for (std::uint32_t pos = 0; pos < transitions_; ++pos) {
    const std::uint32_t j = transitions_ - 1 - pos;  // age rank: 0 = oldest
    weight_[pos] = (0.75 + 0.5 * static_cast<double>(j) / static_cast<double>(transitions_ - 1)) /
                   static_cast<double>(transitions_);
  }
}

double FlapDetector::share(std::uint32_t bits) const {
  double s = 0;
  bits &= mask_;
  while (bits != 0) {
    const int pos = std::countr_zero(bits);
    s += weight_[static_cast<std::size_t>(pos)];
    bits &= bits - 1;
  }
  return s;
}

std::int64_t FlapDetector::quiet_shifts_to_stop(std::uint32_t bits) const {
  for (std::int64_t n = 0; n <= transitions_; ++n) {
    if (stops(quiet(bits, n))) return n;
  }
  return transitions_;  // an empty history always stops (flap_low >= 0)
}

std::uint32_t FlapDetector::catch_up(std::uint32_t bits, std::int64_t& clock_ms,
                                     std::int64_t now_ms) const {
  if (now_ms <= clock_ms) return bits;
  const std::int64_t n = (now_ms - clock_ms) / step_.count();
  clock_ms += n * step_.count();
  return quiet(bits, n);
}

}  // namespace presence::core
