// presence-alert-sink: what a received request means. Pure functions (no sockets), so the rules are
// unit-tested one by one and the server in main.cpp only routes and prints (issue 7).
//
// The rules are the receivers' own, so a payload the sink accepts is one the real service accepts:
//   PagerDuty Events API v2 ("Send an Alert Event"): routing_key; event_action trigger |
//     acknowledge | resolve; dedup_key <= 255 characters (required unless trigger); on trigger a
//     payload with summary (<= 1024 characters), source and severity critical|error|warning|info.
//     Accepted: 202 {"status":"success","message":"Event processed","dedup_key":..}. Refused: 400
//     {"status":"invalid event","message":"Event object is invalid","errors":[..]}.
//   Slack incoming webhook: a JSON object with "text"; answers "ok", else 400 "no_text" /
//     "invalid_payload".
//   presenced's generic webhook (docs/alerts.md): "v":1; with a secret, X-Presence-Signature:
//     sha256=<hex HMAC-SHA256 of the raw body> or 401.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace presence::alert_sink {

inline constexpr std::size_t kPagerDutyDedupKeyMax = 255;   // characters
inline constexpr std::size_t kPagerDutySummaryMax = 1024;   // characters

// What the sink makes of one request: accepted or refused (and why), and what to answer.
struct RequestCheck {
  bool ok = false;
  int status = 400;                // HTTP status to answer
  std::string reason;              // why it was refused; empty when ok
  std::string kind;                // "pagerduty", "slack", "webhook"
  std::string line;                // the alert as one readable line (without time stamp)
  std::string response_body;
  std::string content_type = "application/json";
  nlohmann::json body;             // the parsed body (null when it was not JSON)
};

// Number of Unicode code points in s (an invalid byte counts as one, as presenced's truncation
// does), which is how PagerDuty counts its limits.
std::size_t utf8_length(std::string_view s);

// Lower-case hex HMAC-SHA256(key, data).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// fallback_dedup_key is used when a trigger carries none (PagerDuty then makes one up).
RequestCheck check_pagerduty(std::string_view body, const std::string& fallback_dedup_key);
RequestCheck check_slack(std::string_view path, std::string_view body);
// secret empty: signatures are not checked (a present header is still shown in the line).
RequestCheck check_webhook(std::string_view body, std::string_view signature_header,
                           std::string_view secret);

}  // namespace presence::alert_sink
