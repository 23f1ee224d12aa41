// Fleet incident detection (issue 5): sliding windows of drops and reconnects, globally and per
// segment (broker node and any device label), and the incident lifecycle
// Open -> Recovering -> (Stragglers) -> Closed. Pure: no clock, time comes with every call.
//
// Why: one server-side event must be one page, not one page per device (post-mortems 000-003),
// and the devices that never come back after it must still be found (001). Semantics, parameters
// and their defaults are documented in docs/alert-policy.md; AlertPolicy (policy.h) turns the
// IncidentEvents produced here into AlertIntents.
//
// Memory: per device a 24-byte record plus 4 bytes per label key (interned value id); segment
// counters live per interned label value, never per device.
#pragma once

#include <cstddef>
#include <charconv>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "presence/core/config.h"
#include "presence/core/decision.h"
#include "presence/core/event.h"
#include "presence/core/time.h"

namespace presence::core {

// Thresholds that may differ per segment (FleetConfig::overrides).
struct FleetThresholds {
  // A drop incident opens when, within incident_window, at least incident_open_floor devices of
  // the segment dropped (online -> suspect/offline, still down) AND they are at least
  // incident_open_fraction of the segment's online devices (online + flapping + those drops).
  std::uint32_t incident_open_floor = 20;
  double incident_open_fraction = 0.10;
  // The segment is "back" when the devices the incident holds that are still down are fewer than
  // incident_open_floor OR below incident_close_fraction of the segment (hysteresis).
  double incident_close_fraction = 0.05;
  // ... OR when recovery has settled: more than incident_recovered_share of the most devices the
  // incident held down at once are back. Without this an incident that leaves more stuck devices
  // than the floor/fraction never resolves, so its stragglers are never reported: incident 001
  // (5 % of a fleet stuck until power-cycled, unnoticed for days). The stuck ones are then named
  // in the one straggler alert after straggler_grace.
  double incident_recovered_share = 0.5;
  // A reconnect storm opens when reconnects within incident_window reach storm_open_floor AND
  // storm_open_fraction of the segment's devices AND storm_open_factor x the segment's learnt
  // baseline for one window (the fraction keeps normal churn of a large fleet from looking like
  // a storm before the baseline has been learnt), or when at least storm_flapping_floor devices
  // AND storm_flapping_fraction of the segment are flapping.
  std::uint32_t storm_open_floor = 100;
  double storm_open_fraction = 0.05;
  double storm_open_factor = 10.0;
  std::uint32_t storm_flapping_floor = 20;
  double storm_flapping_fraction = 0.05;
};

// key "" = the whole-fleet segment; value "" = every value of key.
struct FleetThresholdRule {
  std::string key;
  std::string value;
  FleetThresholds thresholds;
};

struct FleetConfig {
  Duration incident_window{std::chrono::minutes(5)};
  // Drops/reconnects closer together than this share one window entry (bounds memory at
  // incident_window / window_resolution entries per active segment); a drop may leave the window
  // up to window_resolution early.
  Duration window_resolution{std::chrono::seconds(1)};
  Duration incident_stable_for{std::chrono::minutes(10)};
  Duration straggler_grace{std::chrono::minutes(15)};
  Duration storm_baseline_tau{std::chrono::hours(1)};
  // Scope: among the segments that qualify, the one with the highest share wins, unless its
  // share is less than incident_scope_lift x the whole fleet's drop share: then the event is
  // fleet-wide and opens as one fleet incident (one page), the segment shows up in the hint.
  double incident_scope_lift = 2.0;
  // A burst of drops is seen one drop at a time, so the first segment to qualify can be a narrow
  // one (a firmware with 10 devices reaches its floor before the fleet reaches 10 %). A narrow
  // drop incident opened less than incident_merge_within ago widens to the whole fleet when the
  // fleet qualifies counting the devices it holds, instead of opening a second incident: one
  // event, one page. The service sets it to group_wait, so only an incident not paged yet
  // changes scope. 0 = never widen.
  Duration incident_merge_within{std::chrono::seconds(30)};
  // Narrowest true scope (issue 11): when at least this share of the devices that dropped in the
  // chosen scope's window share one label value whose segment is strictly narrower, the incident
  // is scoped to that value. The demo's site-b load balancer dropped 18 site-b devices and 2
  // others: "in fleet" sent the on-call looking at the whole fleet; "in site=site-b" is the truth.
  // 1 = only when every dropped device shares it.
  double incident_scope_explain = 0.8;
  std::uint32_t cohort_min_support = 5;
  double cohort_min_lift = 2.0;
  std::size_t cohort_max = 3;
  std::size_t incident_history = 32;  // closed incidents kept for the API
  FleetThresholds defaults;
  std::vector<FleetThresholdRule> overrides;  // first match wins: exact value, then key "*"
};

// Every problem, in member order, each at its member's name ("incident_window",
// "incident_open_fraction" for defaults, "overrides[site=a].storm_open_floor"); the one set of
// rules (issue 12: one config truth), which the YAML loader asks and reports at alerts.policy.*.
// Durations > 0 (incident_merge_within >= 0), window_resolution in (0, incident_window],
// storm_baseline_tau >= incident_window, fractions and shares in (0, 1], incident_close_fraction
// <= incident_open_fraction, floors >= 1, storm_open_factor and incident_scope_lift >= 1,
// cohort_min_support >= 1, cohort_min_lift > 1.
std::vector<ConfigProblem> fleet_problems(const FleetConfig& config);

// "" when usable, else the first problem as "key: reason". The core never throws on config.
std::string validate(const FleetConfig& config);

enum class IncidentKind : std::uint8_t { Drop, Storm, Blind };
enum class IncidentStage : std::uint8_t {
  Open,        // paging
  Recovering,  // resolved (segment back for incident_stable_for), waiting straggler_grace
  Stragglers,  // grace over, some held devices never came back: one grouped alert
  Closed,
};

// A label value over-represented among the incident's devices: lift = share_in_incident /
// share_in_scope (its share among all devices of the incident's scope; the fleet for a fleet
// incident), only with at least cohort_min_support devices.
struct CohortHint {
  std::string key;
  std::string value;
  std::uint32_t support = 0;
  double share_in_incident = 0;
  double share_in_scope = 0;
  double lift = 0;
};

struct Incident {
  std::uint32_t id = 0;
  IncidentKind kind = IncidentKind::Drop;
  IncidentStage stage = IncidentStage::Open;
  std::string scope_key;    // "" = whole fleet
  std::string scope_value;
  MonoTime opened_at{};
  MonoTime resolved_at{};   // valid from Recovering
  MonoTime closed_at{};     // valid when Closed
  MonoTime grace_from{};    // straggler grace runs from here (Blind: end of restart grace)
  std::optional<MonoTime> back_since;  // Open: segment back since (resolves after stable_for)
  std::uint32_t population = 0;  // segment devices counted at open (online + flapping + drops)
  std::uint32_t count = 0;       // drops (Drop) / reconnects or flapping (Storm) at open (or widening)
  double share = 0;              // count / population at open (or widening)
  std::string widened_from;      // "key=value": opened in that segment, widened to the fleet
  std::string narrowed_from;     // "fleet" / "key=value": qualified there, scoped to the value
                                 // that explains >= incident_scope_explain of its drops
  // Closed because it had healed before its page went out (dismiss()): recorded, never paged.
  bool healed = false;
  std::uint32_t peak_down = 0;   // most held devices down at once
  std::uint32_t still_down = 0;  // held devices not back online
  std::vector<DeviceIndex> held;        // every device whose alerts this incident held
  std::vector<DeviceIndex> stragglers;  // held devices still down when the grace ended
  std::vector<CohortHint> hint;
};

struct IncidentEvent {
  enum class Kind : std::uint8_t { Opened, Resolved, Stragglers, Closed };
  Kind kind = Kind::Opened;
  std::uint32_t incident = 0;
  MonoTime at{};
};

// Read-only counters of one segment.
struct SegmentView {
  std::uint32_t known = 0, up = 0, down = 0, flapping = 0;
  std::uint32_t drops_in_window = 0, reconnects_in_window = 0;
  double baseline_per_window = 0;
  std::uint32_t drop_incident = 0, storm_incident = 0;
};

// Snapshot of the non-closed incidents, device ids as strings (indices are not stable across
// restarts). Times are relative to saved_at and rebased on restore.
struct IncidentSnapshot {
  struct Record {
    Incident incident;  // held/stragglers left empty; see the id lists below
    std::vector<std::string> held_ids;
    std::vector<std::string> down_ids;       // still held (not back) at save time
    std::vector<std::string> straggler_ids;
  };
  std::int64_t saved_at_ms = 0;
  std::uint32_t next_id = 1;
  std::vector<Record> incidents;
};

// The snapshot's versioned text (fleet_snapshot.cpp).
std::string to_text(const IncidentSnapshot& snapshot);

const char* to_string(IncidentKind);
const char* to_string(IncidentStage);
const char* to_string(IncidentEvent::Kind);

// Token helpers shared by the fleet and policy snapshot formats (percent-encoded tokens without
// whitespace; "%" alone is the empty string).
namespace snapshot_text {
std::string encode(std::string_view s);
bool decode(std::string_view token, std::string& out);
std::vector<std::string_view> split(std::string_view line);
// The whole token as a number, or false.
template <typename T>
bool number(std::string_view token, T& out) {
  auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), out);
  return ec == std::errc() && p == token.data() + token.size();
}
}  // namespace snapshot_text

class FleetMonitor {
 public:
  explicit FleetMonitor(FleetConfig config = {});
  ~FleetMonitor();
  FleetMonitor(const FleetMonitor&) = delete;
  FleetMonitor& operator=(const FleetMonitor&) = delete;

  const FleetConfig& config() const;

  // Labels define segments. The broker node is a label like any other (e.g. "broker_node").
  void set_label(DeviceIndex device, std::string_view key, std::string_view value);
  std::string_view label(DeviceIndex device, std::string_view key) const;  // "" = unset
  std::vector<std::pair<std::string_view, std::string_view>> labels(DeviceIndex device) const;

  // Every Transition the engine emits, in order.
  void on_transition(const Transition& t);
  // Set a device's state without drop/hold semantics (after an engine restore).
  void resync(DeviceIndex device, State state);
  // The engine forgot the device (Config::forget_after): drop its labels and segment counts so
  // that its index can name a new id.
  void forget(DeviceIndex device);
  // Every accepted Connected event (also those that cause no transition, e.g. while flapping):
  // the reconnect rate. The first connect of a device never seen before is not a reconnect.
  void on_connect(DeviceIndex device, MonoTime at);
  // presenced lost / regained its broker connection: Blind incident.
  void set_blind(bool blind, MonoTime at);
  // Engine restart grace begins/ends: reconnects are not counted during it, and the Blind
  // incident's straggler grace starts when it ends.
  void set_restart_grace(bool active, MonoTime at);
  void tick(MonoTime now);
  void drain(std::vector<IncidentEvent>& out);

  std::uint32_t held_by(DeviceIndex device) const;  // 0 = not held by any incident
  // A drop incident whose held devices still down are fewer than the open floor or fraction of
  // its scope (it would not open now): the drop healed. Issue 11: such an incident is not paged.
  bool healed(std::uint32_t id) const;
  // Closes a healed drop incident before it was paged (Incident::healed): every device it still
  // holds is released to its own clock (returned), so a device that really died inside a blip is
  // paged like any other death, within the latency bound, not as a straggler minutes later.
  std::vector<DeviceIndex> dismiss(std::uint32_t id, MonoTime at);
  const Incident* incident(std::uint32_t id) const;
  std::vector<const Incident*> incidents() const;  // by id, including recent closed ones
  std::optional<SegmentView> segment(std::string_view key, std::string_view value) const;
  bool blind() const;
  bool in_restart_grace() const;
  MonoTime now() const;

  // Label values over-represented among devices, against the devices of the scope segment
  // (scope_key "" = the fleet); the scope's own key is left out.
  std::vector<CohortHint> cohort(const std::vector<DeviceIndex>& devices, std::string_view scope_key,
                                 std::string_view scope_value) const;

  std::size_t memory_bytes() const;  // approximate, for the benchmark

  // Snapshots of non-closed incidents: versioned text, robust to garbage. snapshot() and restore()
  // live in fleet.cpp; the text (serialize = to_text(snapshot()), deserialize) in
  // fleet_snapshot.cpp.
  IncidentSnapshot snapshot(const std::function<std::string(DeviceIndex)>& id_of) const;
  std::string serialize(const std::function<std::string(DeviceIndex)>& id_of) const;
  static bool deserialize(std::string_view text, IncidentSnapshot& out, std::string& error);
  // Before any transition of the restored engine. Returns the number of incidents restored.
  std::size_t restore(const IncidentSnapshot& snapshot, MonoTime now,
                      const std::function<DeviceIndex(std::string_view)>& intern);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presence::core
