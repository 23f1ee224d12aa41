#include "presence/core/flap.h"

#include <algorithm>
#include <bit>

namespace presence::core {

FlapDetector::FlapDetector(const Config& config)
    : transitions_(std::clamp<std::uint32_t>(config.flap_history, 2, kMaxHistory) - 1),
      mask_(transitions_ >= 32 ? 0xFFFFFFFFu : (1u << transitions_) - 1),
      step_(std::max<Duration>(Duration{1}, config.flap_window / transitions_)),
      high_(config.flap_high),
      low_(config.flap_low) {
  // Nagios: weight of the j-th oldest transition is 0.75 + 0.5 * j / (n - 1); the share is the
  // weighted count divided by n.
  std::array<double, kMaxHistory> weight{};  // by bit position (0 = newest)
  for (std::uint32_t pos = 0; pos < transitions_; ++pos) {
    const std::uint32_t j = transitions_ - 1 - pos;  // age rank: 0 = oldest
    const double rank =
        transitions_ > 1 ? static_cast<double>(j) / static_cast<double>(transitions_ - 1) : 0.5;
    weight[pos] = (0.75 + 0.5 * rank) / static_cast<double>(transitions_);
  }
  for (std::size_t byte = 0; byte < 4; ++byte) {
    for (std::uint32_t v = 0; v < 256; ++v) {
      double sum = 0;
      for (std::uint32_t b = 0; b < 8; ++b) {
        if ((v >> b) & 1u) sum += weight[byte * 8 + b];
      }
      table_[byte][v] = sum;
    }
  }
}

double FlapDetector::share(std::uint32_t bits) const {
  bits &= mask_;
  return table_[0][bits & 0xFF] + table_[1][(bits >> 8) & 0xFF] + table_[2][(bits >> 16) & 0xFF] +
         table_[3][bits >> 24];
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
