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
  // Issue 11 (page truth): what the scorer needs to judge scope, blips and cohorts.
  struct Action {
    std::int64_t t = 0;
    std::string action;
  };
  std::vector<Action> actions;  // timeline actions (drop, flap, die, signal, exec, ...)
  struct Disconnect {
    std::int64_t t = 0;
    std::string device, cause;
  };
  std::vector<Disconnect> disconnects;
  std::map<std::string, std::vector<std::int64_t>> connects;                // device -> times
  std::map<std::string, std::map<std::string, std::string>> labels;          // device -> labels
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
  // Issue 11: every page true, on time, rightly scoped.
  std::size_t false_incident_pages = 0;  // an incident page for a drop that healed inside offline_grace
  std::size_t scope_errors = 0;          // an incident page whose scope is not the injected one
  std::vector<std::string> scope_examples;
  std::size_t cohort_pages = 0;          // group or incident pages naming an expected cohort
  std::size_t cohort_mislabels = 0;      // a wrong cohort, or a cohort called "unrelated"
  std::vector<std::string> cohort_examples;
  std::size_t bounded = 0;               // deaths outside any event's burst: first page within the bound
  std::size_t over_bound = 0;            // ... paged later than the bound, or not at all
  std::vector<std::string> over_bound_examples;
  std::optional<double> latency_bound_s;
  std::optional<double> bounded_p50_s, bounded_p99_s;
};

// What a scenario declares and the scorer checks against (docs/scenarios.md, "Page truth").
struct Expectations {
  std::int64_t offline_grace_ms = 0;  // a drop healed when every dropped device was back within it
  std::int64_t bound_ms = 0;          // latency bound of a death's first page; 0 = not scored
  std::int64_t burst_ms = 0;          // deaths this soon after a server-side action are part of it
  bool check_scopes = false;
  std::vector<std::string> incident_scopes;  // "fleet", "site=site-b", ...
  bool check_cohorts = false;
  std::vector<std::string> cohorts;          // "firmware=3.8.0-b3", ...
  std::size_t cohort_min = 3;                // this many members sharing an expected cohort
};

// Empty when the request is a valid PagerDuty Events v2 trigger/resolve, else the reason.
std::string validate_pd(const nlohmann::json& body, const std::string& routing_key);

ModeScore score(const Truth& truth, const std::vector<Page>& pages, std::int64_t min_outage_ms,
                std::int64_t slack_ms, const std::string& routing_key);
ModeScore score(const Truth& truth, const std::vector<Page>& pages, std::int64_t min_outage_ms,
                std::int64_t slack_ms, const std::string& routing_key, const Expectations& expect);

nlohmann::json to_json(const ModeScore& s);

// --- Storm benchmark (issue 6: "20,000 real connections dropped and reconnecting") -----------

// How fast a fleet came back after a storm, from the truth. The storm is the first `drop`,
// `signal`, `restart` or `exec` action in the timeline (the bench files have exactly one). A
// device is "lost" when it was online at the storm and a `disconnect` line follows within
// `window_ms`; it is "back" at its first `connect` after that. Devices are assigned to brokers as
// presence-sim does: device index (id number - 1) modulo the number of brokers.
struct RecoveryPart {
  std::size_t lost = 0;
  std::size_t back = 0;
  std::optional<double> t99_s, t100_s;  // storm -> 99 % / 100 % of the lost devices back
  double peak_connects_per_s = 0;       // connect lines per 1 s bucket after the storm (max)
};

struct Recovery {
  std::string storm_action;  // empty: no storm in the timeline
  std::int64_t storm_ms = 0;
  RecoveryPart all;
  std::vector<RecoveryPart> by_broker;
  // Summed over the workers' `summary` lines.
  std::uint64_t connect_attempts = 0, connects = 0, connect_failures = 0, connack_refused = 0;
};

Recovery recovery(const std::string& truth_path, int brokers, std::int64_t window_ms = 30000);

// One broker's broker-ext heartbeats as `mosquitto_sub -v` printed them ("topic payload" lines).
// Counters restart at 0 with each boot, so totals are summed over boots (last value of each).
struct BrokerCounters {
  std::size_t heartbeats = 0;
  std::size_t boots = 0;
  std::uint64_t connects = 0, disconnects = 0, refused_rate_limited = 0, refused_flap_banned = 0,
                auth_refused = 0;
  std::uint64_t max_clients = 0;
  double peak_connects_per_s = 0;  // max over consecutive heartbeats of one boot
};

BrokerCounters read_heartbeats(const std::string& path);

nlohmann::json to_json(const Recovery& r);
nlohmann::json to_json(const BrokerCounters& c);

}  // namespace presence::scenario
