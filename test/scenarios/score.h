// Scenario scorer (issue 6): compares what presenced paged with what really happened.
//
// Truth is presence-sim's JSON-lines report (docs/simulator.md): which devices really died, when,
// and which disconnects were server-side (drop, flap, broker_closed, ...). Pages are the PagerDuty
// Events v2 requests a mock receiver recorded, each with its arrival time (wall clock, ms).
//
// Definitions (docs/scenarios.md):
//  - a real failure is a `die` of an online device, or a lost session after which the device never
//    tries again (`reconnect_in_ms: null`, the stuck devices of post-mortem 001). It lasts until
//    the device's next `connect` (or the end of the run);
//  - it must be paged when it lasted at least `min_outage` (shorter ones may be paged, never must);
//  - a per-device page (device_offline, device_flapping, each member of a device_group, each
//    device of a stragglers alert) covers a real failure of that device when it arrived between
//    the failure's start and its end + `slack`. A device_offline/device_flapping/device_group
//    page that covers no real failure is a false per-device page;
//  - incident pages are fleet_incident and reconnect_storm triggers (distinct dedup keys).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace presence::scenario {

struct Page {
  std::int64_t t_ms = 0;  // arrival at the mock receiver, unix ms
  nlohmann::json body;    // the PagerDuty Events v2 request
};

struct Failure {
  std::string device;
  std::int64_t start_ms = 0;
  std::optional<std::int64_t> end_ms;  // next connect; none = still down at the end
  std::string cause;                   // die:action, die:failure, stuck:<disconnect cause>
};

struct Truth {
  std::int64_t start_ms = 0;  // first line
  std::int64_t end_ms = 0;    // the `end` action (or the last line)
  std::size_t devices = 0;
  std::set<std::string> device_ids;
  std::vector<Failure> failures;
  std::map<std::string, std::size_t> disconnect_causes;  // server-side and other session losses
  std::vector<std::string> errors;                       // unparsable lines (counted, not fatal)
};

Truth read_truth(const std::string& path);
std::vector<Page> read_pages(const std::string& path);  // JSON lines {"t":..,"body":{..}}

struct ModeScore {
  std::size_t pages_total = 0;      // trigger requests before the end
  std::size_t resolves = 0;
  std::size_t invalid = 0;          // requests that are not valid Events v2 (see validate_pd)
  std::size_t required = 0;         // real failures that had to be paged
  std::size_t paged = 0;            // ... and were
  std::size_t missed = 0;
  std::vector<std::string> missed_devices;  // first few, for the report
  std::size_t false_device_pages = 0;
  std::vector<std::string> false_devices;   // first few
  std::size_t device_pages = 0;             // device_offline + device_flapping + device_group
  std::size_t incident_pages = 0;
  std::size_t straggler_alerts = 0;
  std::size_t straggler_devices = 0;
  std::size_t false_straggler_devices = 0;
  std::size_t other_pages = 0;              // blind, unknown classes
  // Per-device pages naming a client that is not a simulated device (e.g. the other presenced
  // instance on the same broker, seen through broker-ext). Not scored against the fleet's truth.
  std::size_t foreign_pages = 0;
  std::vector<std::string> foreign_ids;
  std::size_t straggler_unlisted = 0;       // devices counted by a stragglers alert but not listed
  std::optional<double> latency_p50_s, latency_p99_s, latency_max_s;
};

// Empty when the request is a valid PagerDuty Events v2 trigger/resolve, else the reason.
std::string validate_pd(const nlohmann::json& body, const std::string& routing_key);

ModeScore score(const Truth& truth, const std::vector<Page>& pages, std::int64_t min_outage_ms,
                std::int64_t slack_ms, const std::string& routing_key);

nlohmann::json to_json(const ModeScore& s);

}  // namespace presence::scenario
