// Retry schedule for 429, 5xx and network errors (PagerDuty: "retry after some time"; issue 5).
#pragma once

#include <chrono>
#include <ctime>
#include <optional>
#include <string_view>

#include "presence/core/time.h"

namespace presence::alert {

using core::Duration;

struct BackoffConfig {
  Duration initial{std::chrono::seconds(1)};
  Duration max{std::chrono::minutes(5)};
  double multiplier = 2.0;
  // Share of the delay taken off at random, so many presenced instances (or sinks) that failed
  // together do not retry together. 0 = no jitter.
  double jitter = 0.2;
};

// Delay before retry number `attempt` (1 = first retry):
//   base = min(max, initial * multiplier^(attempt-1));  delay = base * (1 - jitter * unit_random)
// so delay is in [base * (1 - jitter), base] and never exceeds max. unit_random is in [0, 1);
// tests pass fixed values, the dispatcher a PRNG.
Duration backoff_delay(const BackoffConfig& config, unsigned attempt, double unit_random);

// Retry-After header value (RFC 9110): delay-seconds or an HTTP-date, relative to now_unix.
// nullopt when unparsable; a date in the past is 0.
std::optional<Duration> parse_retry_after(std::string_view value, std::time_t now_unix);

}  // namespace presence::alert
