// Request bodies for each sink, as pure functions (unit-tested field by field).
//   PagerDuty Events API v2: https://developer.pagerduty.com/docs/events-API-v2/trigger-events
//   Slack incoming webhooks: "text" (notification fallback) plus "blocks"
//   Generic webhook: the intent as versioned JSON ("v":1, STYLE.md habit 6), HMAC-SHA256 signed
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "presence/alert/outbox_entry.h"
#include "presence/core/decision.h"

namespace presence::alert {

// PagerDuty limits (Events API v2, "Send an Alert Event").
inline constexpr std::size_t kPagerDutySummaryMax = 1024;  // characters
inline constexpr std::size_t kPagerDutyDedupKeyMax = 255;  // characters

// Limits applied to every intent before it is written to the outbox, so no sink request can
// exceed PagerDuty's 512 KB event limit and no record the outbox's size cap: at most
// kMaxDetails details, each key <= kMaxDetailKey and value <= kMaxDetailValue bytes, the summary
// <= kMaxSummaryBytes, other strings <= kMaxFieldBytes. Cut text ends in "…"; trimmed details
// are marked with a "presenced_truncated" detail. Returns true if anything was cut.
inline constexpr std::size_t kMaxDetails = 100;
inline constexpr std::size_t kMaxDetailKey = 256;
inline constexpr std::size_t kMaxDetailValue = 2048;
// Except the "devices" detail (the ids of a group or straggler alert, comma-separated, as many as
// alerts.policy.details_max_devices): up to kMaxDeviceListBytes, cut after a whole id, so the
// on-call gets every id they were promised up to ~190 KB (PagerDuty: 512 KB per event in all).
inline constexpr std::size_t kMaxDeviceListBytes = 192 * 1024;
inline constexpr std::size_t kMaxSummaryBytes = 16384;
inline constexpr std::size_t kMaxFieldBytes = 4096;
bool clamp_intent(core::AlertIntent& intent);

// Wire names. Our own table rather than core's to_string(): the wire format is versioned and must
// not change when an enum is renamed in the core.
const char* wire_name(core::Severity s);             // critical|error|warning|info
const char* wire_name(core::AlertIntent::Action a);  // trigger|resolve|notify
const char* wire_name(core::AlertIntent::Type t);    // device_offline, fleet_incident, ...

// ISO 8601 UTC with milliseconds: 2026-11-21T12:00:00.123Z
std::string iso8601_utc(std::int64_t wall_ms);

// At most max_chars code points of s; when cut, the last kept code point is "…" so a reader sees
// the text was shortened. Never splits a UTF-8 sequence (invalid bytes count as one character).
std::string truncate_utf8(std::string_view s, std::size_t max_chars);

// dedup_key as sent to PagerDuty: unchanged when it fits in 255 characters; otherwise a prefix plus
// "~" and 16 hex digits of SHA-256 of the whole key, exactly 255 bytes. Deterministic, so a trigger
// and its resolve always carry the same key, and two long keys sharing a prefix stay distinct.
std::string pagerduty_dedup_key(std::string_view key);

// Lower-case hex HMAC-SHA256(key, data) (OpenSSL).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

struct PagerDutyFields {
  std::string routing_key;
  std::string source;  // payload.source: where presenced runs (hostname), unless configured
};
// Trigger: routing_key, event_action, dedup_key, payload{summary, source, severity, timestamp,
// component, group, class, custom_details} (empty optional strings are left out).
// Resolve: only routing_key, event_action, dedup_key, as PagerDuty documents.
// A Notify is never given to this function: the PagerDuty sink does not accept it (sink.h
// Sink::wants; counted as skipped). Events v2 has no "notify" action.
std::string pagerduty_body(const PagerDutyFields& fields, const OutboxEntry& entry);

// One alert as a Slack message.
std::string slack_body(const OutboxEntry& entry);
// A burst of queued alerts as one message: counts by action and type, then the first list_first.
std::string slack_summary_body(const std::vector<OutboxEntry>& entries, std::size_t list_first);

// {"v":1,"seq":..,"action":..,"type":..,"severity":..,"dedup_key":..,"summary":..,"component":..,
//  "group":..,"class":..,"details":{..},"timestamp":..}
std::string webhook_body(const OutboxEntry& entry);
// Value of the X-Presence-Signature header for body: "sha256=<hex>".
std::string webhook_signature(std::string_view secret, std::string_view body);

}  // namespace presence::alert
