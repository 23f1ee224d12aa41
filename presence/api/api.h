// The /v1 JSON API and the dashboard (issue 7). The api room only reads (STYLE.md): the router
// maps HTTP onto an ApiBackend, which the service implements by running queries on the engine
// thread between batches (presence/server/api_backend.h). The router never sees the engine.
//
// Every answer is JSON; errors are {"error":{"code":..,"message":..}} with a matching status.
// docs/api.md documents every endpoint.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "presence/common/result.h"

namespace httplib {
class Server;
}

namespace presence::api {

using WallTime = std::chrono::system_clock::time_point;
using LabelPair = std::pair<std::string, std::string>;

// An error a backend call can end in. http 0 = no error.
struct ApiError {
  int http = 0;
  std::string code;  // "not_found", "bad_request", "unavailable", ...
  std::string message;
  bool ok() const { return http == 0; }
  static ApiError not_found(std::string message) { return {404, "not_found", std::move(message)}; }
  static ApiError bad_request(std::string message) {
    return {400, "bad_request", std::move(message)};
  }
  static ApiError unavailable(std::string message) {
    return {503, "unavailable", std::move(message)};
  }
};

// Expected-style result across the room boundary (STYLE.md habit 7): the common one
// (presence/common/result.h), whose error here also carries the HTTP status.
template <typename T>
using Result = common::Result<T, ApiError>;

// ---- devices ----

struct DeviceQuery {
  std::string state;                // "" = any; else a state word ("online", "offline", ...)
  std::vector<LabelPair> labels;    // every one must match exactly
  std::string id_prefix;            // "" = any
  std::uint64_t cursor = 0;         // first device index to look at (decoded from the cursor)
  std::size_t limit = 100;          // at most this many devices in the page
  std::size_t scan_budget = 50000;  // at most this many devices examined (engine thread time)
};

struct DeviceSummary {
  std::string id;
  std::string state;  // state word
  WallTime since{};
  std::string reason;             // cause word ("connected", "offline_grace", ...)
  std::string disconnect_reason;  // "" unless the reason is a disconnect
  std::string parent;             // "" unless state is "unreachable": the ancestor down (issue 15)
  std::vector<LabelPair> labels;
};

struct DevicePage {
  std::vector<DeviceSummary> devices;
  // Index to continue from; empty when the scan reached the end. A page may hold fewer than
  // limit devices while more follow (the scan budget ran out): follow next until it is empty.
  std::optional<std::uint64_t> next;
  std::size_t total = 0;  // devices known (not the number matching the filter)
};

struct TransitionRecord {
  WallTime at{};
  std::string from, to, reason, disconnect_reason;
};

struct DeviceDetail {
  DeviceSummary device;
  WallTime last_seen{};
  std::int64_t heartbeat_mean_ms = 0;     // 0 = none observed
  std::int64_t heartbeat_timeout_ms = 0;  // 0 = not judged by heartbeats
  std::uint64_t session = 0;
  std::uint32_t held_by_incident = 0;  // 0 = none
  // Most recent last, from a bounded global ring (older ones may have been evicted).
  std::vector<TransitionRecord> transitions;
};

// ---- fleet ----

struct SegmentCounts {
  std::string key, value;
  std::size_t devices = 0;
  std::vector<std::pair<std::string, std::size_t>> by_state;  // state word -> count
};

struct FleetSummary {
  WallTime at{};
  std::size_t devices = 0;
  std::vector<std::pair<std::string, std::size_t>> by_state;  // every state word, in order
  bool broker_connected = false;
  bool blind = false;
  bool restart_grace = false;
  std::vector<SegmentCounts> segments;  // per label key/value, bounded
  bool segments_truncated = false;
  WallTime segments_at{};  // when the segment counts were last complete
};

// One point of the server-side fleet history (GET /v1/fleet/history).
struct FleetSample {
  WallTime at{};
  std::array<std::size_t, 5> counts{};  // unknown, online, suspect, offline, flapping
};

// ---- incidents ----

struct CohortHintView {
  std::string key, value;
  std::uint32_t support = 0;
  double share_in_incident = 0, share_in_scope = 0, lift = 0;
};

struct IncidentSummary {
  std::uint32_t id = 0;
  std::string kind;                    // "drop", "storm", "blind"
  std::string stage;                   // "open", "recovering", "stragglers", "closed"
  std::string scope_key, scope_value;  // "" = whole fleet
  WallTime opened_at{};
  std::optional<WallTime> resolved_at, closed_at;
  std::uint32_t population = 0, count = 0, peak_down = 0, still_down = 0;
  double share = 0;
  std::size_t held = 0, stragglers = 0;
  bool healed = false;  // issue 11: healed before its page: a notice, never paged
  std::vector<CohortHintView> hint;
};

struct IncidentDetail {
  IncidentSummary incident;
  std::vector<std::string> held_devices;        // every device whose alerts it held (bounded)
  std::vector<std::string> still_held_devices;  // held and not back yet (bounded)
  std::vector<std::string> straggler_devices;   // bounded
  std::vector<std::string> alerts;              // dedup keys of its firing alerts
};

// ---- alerts (issue 17: "what is paging now, and why") ----

// One page that was sent and not resolved: the dashboard's "Firing now" panel, GET /v1/alerts
// and `presencectl firing` all show these, nothing else.
struct FiringAlertView {
  std::string dedup_key;
  std::string type;      // alert type word (device_offline, fleet_incident, ...; docs/alerts.md)
  std::string kind;      // "device", "group", "incident", "stragglers", "blind"
  std::string severity;  // "critical", "error", "warning", "info"; "" = sent before a restart
  std::string summary;   // the page's text as sent ("" = sent before a restart)
  std::string scope;     // "fleet", "site=site-b", a device id, "route default", "broker"
  WallTime since{};      // when the page was sent (first trigger)
  std::uint32_t incident = 0;         // fleet alerts and stragglers: the incident, 0 = none
  std::vector<CohortHintView> hint;   // incident pages: the incident's cohort hint
  std::size_t device_count = 0;       // exact
  std::vector<std::string> devices;   // bounded (max_ids), each id once
};

// ---- silences ----

struct SilenceView {
  std::uint64_t id = 0;
  std::vector<LabelPair> match;  // includes the pseudo-label "alert"
  WallTime starts_at{}, ends_at{};
  std::string comment;
};

struct NewSilence {
  std::vector<LabelPair> match;
  std::optional<WallTime> starts_at;  // empty = now
  WallTime ends_at{};
  std::string comment;
};

// What the service implements. Calls come from HTTP worker threads, concurrently.
// ---- device hygiene (issue 14, GET /v1/doctor; docs/doctor.md) ----

struct DoctorFinding {
  std::string id;
  std::string check;    // stable word, e.g. "no_last_will"
  std::string problem;  // what is wrong, with the evidence
  std::string fix;      // the configuration line / firmware setting that fixes it
};
struct DoctorReport {
  std::size_t devices_checked = 0;
  std::size_t devices_dropped = 0;  // not tracked (bound reached)
  std::vector<std::pair<std::string, std::size_t>> counts;  // every check, in report order
  std::vector<DoctorFinding> findings;
  bool truncated = false;  // more findings than ?limit=
};

class ApiBackend {
 public:
  virtual ~ApiBackend() = default;
  // Not every backend observes devices' MQTT set-up: the default answers 503.
  virtual Result<DoctorReport> doctor(std::size_t /*limit*/) {
    return Result<DoctorReport>::fail(ApiError::unavailable("no device-hygiene data"));
  }
  virtual Result<DevicePage> devices(const DeviceQuery& query) = 0;
  virtual Result<DeviceDetail> device(std::string_view id) = 0;
  virtual Result<FleetSummary> fleet() = 0;
  virtual Result<std::vector<FleetSample>> fleet_history() = 0;  // oldest first
  virtual Result<std::vector<IncidentSummary>> incidents() = 0;
  virtual Result<IncidentDetail> incident(std::uint32_t id) = 0;
  virtual Result<std::vector<FiringAlertView>> alerts() = 0;  // oldest page first
  virtual Result<std::vector<SilenceView>> silences() = 0;
  virtual Result<SilenceView> add_silence(const NewSilence& silence) = 0;
  virtual Result<bool> remove_silence(std::uint64_t id) = 0;  // false = no such silence
};

// Request counters for /metrics (docs/metrics.md): presence_api_requests_total and
// presence_api_errors_total{code}. Shared between the router (HTTP threads) and /metrics.
struct ApiCounters {
  static constexpr std::array<const char*, 7> kCodes = {"bad_request", "unauthorized", "forbidden",
                                                        "not_found",   "too_large",    "internal",
                                                        "unavailable"};
  std::atomic<std::uint64_t> requests{0};
  std::array<std::atomic<std::uint64_t>, kCodes.size()> errors{};
};
std::string render_prometheus(const ApiCounters& counters);

struct ApiOptions {
  // Bearer token (http.token / http.token_file). Mutating endpoints always require it (and are
  // refused when none is configured); reads require it when require_token_for_reads.
  std::string token;
  // Set when http.listen is not a loopback address: the fleet's state is nobody else's business.
  bool require_token_for_reads = false;
  std::size_t max_limit = 1000;  // ?limit= upper bound
  std::size_t default_limit = 100;
  bool dashboard = true;                  // serve the embedded dashboard at /
  std::shared_ptr<ApiCounters> counters;  // optional
  // More GET endpoints under /v1 that answer a JSON document, under the same token rule as every
  // /v1 read (e.g. GET /v1/ha from the HA node, presence/ha/node.h). Path -> body; any thread.
  std::vector<std::pair<std::string, std::function<std::string()>>> extra_reads;
  // Server-side failures (5xx) are reported here, keyed by error code; the caller rate-limits
  // (STYLE.md: logged once, counted). Optional.
  std::function<void(std::string_view code, std::string_view line)> log;
};

// Registers /v1/... and (if options.dashboard) / and /assets/... on server. The backend must
// outlive the server's handlers.
void register_api(httplib::Server& server, ApiBackend& backend, ApiOptions options);

// True for 127.0.0.0/8, ::1 and "localhost": binding there needs no token for reads.
bool is_loopback_host(std::string_view host);
// Constant-time comparison of a presented bearer token with the configured one.
bool same_token(std::string_view presented, std::string_view token);

// Helpers shared with the tests and the backend.
std::string encode_cursor(std::uint64_t index);
std::optional<std::uint64_t> decode_cursor(std::string_view cursor);
std::string iso8601(WallTime t);  // "2026-11-21T12:00:00.123Z"
std::optional<WallTime> parse_iso8601(std::string_view text);
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);  // "90s" "2h"

}  // namespace presence::api
