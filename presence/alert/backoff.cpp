#include "presence/alert/backoff.h"

#include <curl/curl.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace presence::alert {

Duration backoff_delay(const BackoffConfig& config, unsigned attempt, double unit_random) {
  const double initial = static_cast<double>(std::max<std::int64_t>(config.initial.count(), 0));
  const double cap = static_cast<double>(std::max<std::int64_t>(config.max.count(), 0));
  const double mult = std::max(config.multiplier, 1.0);
  const unsigned exponent = attempt == 0 ? 0 : attempt - 1;
  // pow can overflow to inf for big attempts; min() with the cap handles it.
  const double base = std::min(cap, initial * std::pow(mult, static_cast<double>(exponent)));
  const double jitter = std::clamp(config.jitter, 0.0, 1.0);
  const double u = std::clamp(unit_random, 0.0, 1.0);
  return Duration{static_cast<std::int64_t>(std::floor(base * (1.0 - jitter * u)))};
}

std::optional<Duration> parse_retry_after(std::string_view value, std::time_t now_unix) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r' ||
                            value.back() == '\n')) {
    value.remove_suffix(1);
  }
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return Duration{std::chrono::seconds(999'999'999)};  // capped by caller
    return Duration{std::chrono::seconds(std::stoll(std::string(value)))};
  }
  // HTTP-date: libcurl's parser handles the RFC 1123 / 850 / asctime forms.
  const std::string s(value);
  const std::time_t when = curl_getdate(s.c_str(), nullptr);
  if (when == -1) return std::nullopt;
  return Duration{std::chrono::seconds(std::max<std::time_t>(when - now_unix, 0))};
}

}  // namespace presence::alert
