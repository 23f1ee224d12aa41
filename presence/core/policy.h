// Alert policy (issue 5): what becomes a page, what is held by a fleet incident, what is grouped,
// what is silenced. Consumes the engine's Transitions and the FleetMonitor's IncidentEvents and
// produces AlertIntents (decision.h). Pure: no clock, time comes with every call.
//
// The promise: one page per server-side event, every real failure paged. Every alert type, its
// dedup_key, when it fires and when it is held is in docs/alert-policy.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "presence/core/decision.h"
#include "presence/core/engine.h"
#include "presence/core/fleet.h"
#include "presence/core/time.h"
#include "presence/core/topology.h"

namespace presence::core {

using LabelMatch = std::pair<std::string, std::string>;  // key, value (exact)

// Severity and routing per label; the first rule whose matchers all match wins. Alerts with
// different routes are never grouped together (they go to different people).
struct AlertRule {
  std::vector<LabelMatch> match;  // empty = every alert
  Severity severity = Severity::Error;
  std::string route;              // AlertIntent::group
};

struct PolicyConfig {
  // A device offline (or flapping) this long pages (per-device alert). Counted from the
  // transition to Offline, so the total delay after the last sign of life is
  // offline_grace + alert_after; it also gives the fleet monitor time to hold the device.
  Duration alert_after{std::chrono::minutes(2)};
  // Alertmanager semantics: a route's first due alert waits group_wait for company; after a
  // notification the route sends again at most once per group_interval.
  Duration group_wait{std::chrono::seconds(30)};
  // Issue 11: group_interval never delays a device's FIRST page (the latency bound
  // offline_grace + alert_after + group_wait + 5 s, docs/configuration.md). Every due device
  // alert is a first page, so it only waits group_wait; group_interval is kept as a valid key.
  Duration group_interval{std::chrono::minutes(5)};
  // Devices of one flush that share a label value (>= group_cohort_min of them, over-represented
  // by cohort_min_lift against the fleet) are paged as that cohort ("3 of 10 firmware=3.8.0-b3
  // devices flapping"); the rest are named one by one (issue 11).
  std::size_t group_cohort_min = 3;
  // presenced blind this long pages (a broker restart that reconnects in seconds does not).
  Duration blind_alert_after{std::chrono::minutes(1)};
  // Device ids listed in one grouped/straggler alert's details (the count is always exact).
  std::size_t details_max_devices = 50;
  // A silence covers a fleet incident whose scope it matches, or when at least this share of
  // the incident's held devices match it (planned maintenance of a node that is the whole fleet).
  double silence_incident_cover = 0.9;
  Severity device_severity = Severity::Error;       // when no rule matches
  Severity incident_severity = Severity::Critical;  // fleet incident / storm / blind
  Severity straggler_severity = Severity::Error;
  std::vector<AlertRule> rules;
  // Parents and children (issue 15, docs/core.md "Parents and children"). The label whose value
  // names a device's parent (a gateway, bridge or edge node id); "" = no topology from labels.
  // Sparkplug ingest and the presets set it; a config `topology.parents` map sets it too.
  std::string parent_label = "parent";
  // A parent back: its children that dropped while it was down and are still down this long after
  // it returned are paged once, as that parent's stragglers. Sparkplug devices are reborn (DBIRTH)
  // within seconds of their edge node's NBIRTH; 2 min is the device alert_after.
  Duration parent_return_grace{std::chrono::minutes(2)};
};

// Every problem, in member order, each at its member's name ("group_interval", "rules[2].match");
// the one set of rules (issue 12: one config truth), which the YAML loader asks and reports at
// alerts.policy.* (rules[i] at alerts.routes[i]). alert_after and group_wait >= 0, the other
// durations > 0, details_max_devices in 1..10000, group_cohort_min >= 2,
// silence_incident_cover in (0, 1], no empty label key in a rule's match.
std::vector<ConfigProblem> policy_problems(const PolicyConfig& config);

// "" when usable, else the first problem as "key: reason".
std::string validate(const PolicyConfig& config);

// Maintenance window / silence. Matchers are exact label matches (device labels, an incident's
// scope label) plus the pseudo-label "alert" = device_offline | device_flapping | device_group |
// fleet_incident | reconnect_storm | stragglers | blind. No matchers = everything.
// Active during [starts_at, ends_at).
struct Silence {
  std::uint64_t id = 0;  // assigned by add_silence
  std::vector<LabelMatch> match;
  MonoTime starts_at{};
  MonoTime ends_at{};
  std::string comment;
};

// An alert that was triggered and not yet resolved (for the API: "sent").
struct FiringAlert {
  std::string dedup_key;
  AlertIntent::Type type = AlertIntent::Type::DeviceOffline;
  MonoTime since{};
  std::vector<DeviceIndex> devices;  // device alerts, groups and stragglers
  std::uint32_t incident = 0;        // fleet alerts
};

// Counters for /metrics (names as in docs/alert-policy.md).
struct PolicyCounters {
  std::uint64_t triggers = 0;
  std::uint64_t resolves = 0;
  std::uint64_t device_alerts_cancelled = 0;  // back before alert_after/group flush: no page
  std::uint64_t device_alerts_held = 0;       // held by a fleet incident
  std::uint64_t alerts_silenced = 0;
  std::uint64_t devices_grouped = 0;          // devices sent inside a DeviceGroup
  std::uint64_t incidents_healed = 0;         // drop incidents healed before their page: notice only
  std::uint64_t notices = 0;                  // Notify intents (never pages)
  std::uint64_t unreachable_held = 0;         // device drops held because a parent is down
  std::uint64_t parent_cycles_refused = 0;    // parent labels refused: cycle or chain too deep
};

// Wiring: the policy is the engine's DecisionObserver (engine.h):
//   AlertPolicy policy(policy_config, fleet_config,
//                      [&engine](DeviceIndex d) { return std::string(engine.id_of(d)); });
//   engine.set_observer(&policy);   // before the first event; Engine::drain_alerts then returns
//                                   // the policy's AlertIntents
// It can also be driven directly (tests, replay) through the same calls.
// Snapshot of the policy (silences, device alerts pending or firing, groups, incident pages) and
// of the fleet monitor's incidents, so that after a restart every firing alert still resolves
// and no pending page is lost. Device ids as strings; times rebased on restore.
struct PolicySnapshot {
  struct Device {
    std::string id;
    std::uint8_t phase = 0;  // 0 pending, 1 silenced, 2 batched, 3 firing
    bool flapping = false;
    std::int64_t due_ms = 0;
    std::uint64_t group = 0;
  };
  struct Group {
    std::uint64_t id = 0;
    std::string key, route;
    std::int64_t since_ms = 0;
    std::vector<std::string> members;  // still firing
  };
  struct IncidentPage {
    std::uint32_t incident = 0;
    std::uint8_t incident_phase = 0;    // 0 waiting, 1 silenced, 2 firing, 3 done
    std::uint8_t stragglers_phase = 3;
    std::int64_t due_ms = 0;            // waiting: when it pages (-1 = none)
    std::int64_t incident_since_ms = 0, stragglers_since_ms = 0;
  };
  std::int64_t saved_at_ms = 0;
  std::uint64_t next_group = 1, next_silence = 1;
  std::vector<Silence> silences;
  std::vector<Device> devices;
  std::vector<Group> groups;
  std::vector<IncidentPage> incident_pages;
  // Device problems an incident holds (issue 11): when each started, so a device released by a
  // healed incident after a restart is still paged on its own clock.
  struct Held {
    std::string id;
    std::int64_t since_ms = 0;
    bool flapping = false;
  };
  std::vector<Held> held;
  IncidentSnapshot fleet;
};

// The snapshot's versioned text (policy_snapshot.cpp).
std::string to_text(const PolicySnapshot& snapshot);
// Every device id a policy snapshot holds (its fleet incidents' too), for rewriting in place.
void for_each_id(PolicySnapshot& snapshot, const std::function<void(std::string&)>& fn);

class AlertPolicy final : public DecisionObserver {
 public:
  using IdOf = std::function<std::string(DeviceIndex)>;

  AlertPolicy(PolicyConfig policy, FleetConfig fleet, IdOf id_of);
  ~AlertPolicy() override;
  AlertPolicy(const AlertPolicy&) = delete;
  AlertPolicy& operator=(const AlertPolicy&) = delete;

  // The policy owns the fleet monitor and feeds it first, so holds are known before device
  // alerts are decided. Read it for incidents, held devices and stragglers.
  FleetMonitor& fleet();
  const FleetMonitor& fleet() const;
  const PolicyConfig& config() const;

  // DecisionObserver: labels, every transition in order, every accepted Connected event,
  // blindness and restart grace, ticks, and the alert drain.
  void on_label(DeviceIndex device, std::string_view key, std::string_view value) override;
  void on_transition(const Transition& t) override;
  void on_connect(DeviceIndex device, MonoTime at) override;
  void on_blind(bool blind, MonoTime at) override;
  void on_restart_grace(bool active, MonoTime at) override;
  void on_tick(MonoTime now) override;
  void drain_alerts(std::vector<AlertIntent>& out) override;
  // Expiry: a device held by a fleet incident or with a page sent (firing) is kept until that
  // resolves; an alert not yet sent (pending, batched, silenced) is cancelled when it is
  // forgotten.
  bool may_forget(DeviceIndex device) const override;
  void on_forget(DeviceIndex device) override;

  // Silences (config and the HTTP API call these). add_silence returns the id (> 0), or 0 when
  // the silence is invalid (ends_at <= starts_at).
  std::uint64_t add_silence(Silence silence);
  bool remove_silence(std::uint64_t id, MonoTime now);
  std::vector<Silence> silences() const;

  // Held vs sent, for the API.
  std::vector<FiringAlert> firing() const;
  std::size_t pending() const;  // device alerts waiting for alert_after / group flush / silence
  std::vector<DeviceIndex> held(std::uint32_t incident) const;        // still held, not back
  std::vector<DeviceIndex> stragglers(std::uint32_t incident) const;  // reported stragglers
  PolicyCounters counters() const;

  // Parents and children (issue 15). A device is unreachable while an ancestor is down: its drop
  // is held under the ancestor's one page ("" = reachable, else the topmost ancestor down).
  const Topology& topology() const;
  std::string unreachable_behind(DeviceIndex device) const;
  // Devices held unreachable right now (they dropped while a parent was down, not back yet).
  std::size_t unreachable() const;
  // Parent links refused since the last call ("parent cycle: a -> b -> a; ..."): the adapter logs
  // each once. The link is not changed; the device keeps its previous parent (or none).
  std::vector<std::string> drain_topology_errors();

  // After Engine::restore (which sets states without transitions): teach the fleet monitor every
  // device's state, so segment populations are right from the first drop after a restart.
  void resync(const Engine& engine);

  // Snapshots (presence/store persists the text): versioned, robust to garbage (deserialize
  // returns false with a message, never throws or crashes). restore() after Engine::restore and
  // before the first event.
  // snapshot() and restore() live in policy.cpp; the text (serialize = to_text(snapshot()),
  // deserialize) in policy_snapshot.cpp.
  PolicySnapshot snapshot() const;
  // The same, with device ids from id_of (issue 16 item 3: the engine thread takes it with
  // DeviceCopy::index_token and the saver thread puts the real ids in, DeviceCopy::resolve).
  PolicySnapshot snapshot(const IdOf& id_of) const;
  std::string serialize() const;
  static bool deserialize(std::string_view text, PolicySnapshot& out, std::string& error);
  void restore(const PolicySnapshot& snapshot, MonoTime now,
               const std::function<DeviceIndex(std::string_view)>& intern);

  // Issue 19 item 7: alert decisions the sinks were sent (the durable outbox) after the snapshot
  // was copied: a crash in between must cost at most a duplicate, never a lost page. Applies
  // them in order to the snapshot before restore: a trigger makes its alert firing (and its
  // device down), a resolve closes it (and its device up), so the next outage pages and a
  // recovery resolves. Group, incident and straggler numbers move past the replayed keys (a stale
  // next id reused presence/group/<n> for another group: PagerDuty merged the two pages). A page
  // the snapshot cannot track (an incident opened after it) goes to *resolve_now, to be resolved
  // at once: the fleet monitor opens a new one if the problem persists. Returns how many intents
  // were applied; those that could not be are counted in *skipped.
  static std::size_t replay_sent(const std::vector<AlertIntent>& sent, PolicySnapshot& policy,
                                 std::vector<DeviceSnapshot>& devices, std::size_t* skipped,
                                 std::vector<AlertIntent>* resolve_now = nullptr);

  // HA takeover (docs/ha.md "Adoption of the log's open pages"): a device page the notification
  // log shows open (its last sent action is a trigger, sent by a dead leader) that this policy
  // never decided, because this instance was down or in restart grace when the device died.
  // device_page_open: this policy has a page for the device (firing alone or in a group): it is
  // its own already, nothing to adopt. adopt_open_pages makes each device's page this policy's
  // own, judged like one it sent: `state` is the device's state now (Engine::view). Online or
  // Unknown: resolved now, once ("back online"); down (suspect, offline, flapping): firing, alone,
  // resolved when the device is back; a page still pending, batched or silenced here is the same
  // page, already sent: firing, never triggered again. A device already firing here is left as it
  // is. Saved in the snapshot like any firing page. Call it once the instance's own view is warm
  // (restart grace over, not blind): before, a device's state is not evidence.
  struct AdoptedPage {
    DeviceIndex device = kNoDevice;
    State state = State::Unknown;
  };
  struct AdoptCounts {
    std::size_t firing = 0;    // adopted, device down: resolved on its return
    std::size_t resolved = 0;  // adopted, device back: resolved now
    std::size_t already = 0;   // this policy had it firing: left alone
  };
  bool device_page_open(DeviceIndex device) const;
  AdoptCounts adopt_open_pages(const std::vector<AdoptedPage>& pages, MonoTime now);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presence::core
