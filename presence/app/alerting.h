// The glue between the rooms (issue 5, "integration"): config -> core FleetConfig/PolicyConfig,
// alert sinks and dispatcher, snapshot store, watchdog; and the engine-thread hooks that feed
// them. The data path stays one direction (docs/architecture.md):
//
//   server::Loop engine thread, steps "alerts.restore" (start) and "alerts" (each batch, stop)
//       engine.set_observer(policy)              (mode: presence)
//       each batch: engine.drain_alerts -> Dispatcher::submit (copy only, never blocks)
//       every store.snapshot_interval: copy state -> saver thread -> SnapshotStore
//
// mode: naive replaces the policy with core::NaiveAlerts (presence/core/naive.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "presence/alert/dispatcher.h"
#include "presence/alert/sink.h"
#include "presence/alert/watchdog.h"
#include "presence/api/alert_metrics.h"
#include "presence/app/config.h"
#include "presence/core/naive.h"
#include "presence/core/policy.h"
#include "presence/core/snapshot_slicer.h"
#include "presence/common/log.h"
#include "presence/server/loop.h"
#include "presence/store/saver.h"
#include "presence/store/snapshot.h"

namespace presence::app {

// Config mapping: policy_config / fleet_config / route_name are in config.h (the loader checks
// the mapped configs against the core's rules).
// One sink per destination: "pagerduty" / "slack" / "webhook" for route "" (and routes without
// their own key/URL), "pagerduty-route<i>" / "slack-route<i>" for a route with its own;
// "pagerduty-change" (Notify intents only), "alertmanager", "alertmanager-2"... (one per URL),
// "teams". Empty when nothing is enabled or alerts.enabled is false. log: the sinks' own
// threads (Alertmanager re-sends).
std::vector<std::unique_ptr<alert::Sink>> make_sinks(const Config& config, common::LogFn log = {});
std::string outbox_path(const Config& config);    // <store.dir>/outbox.log
std::string snapshot_path(const Config& config);  // <store.dir>/snapshot.bin

struct AlertingCounters {
  std::uint64_t intents_total[2] = {0, 0};  // trigger, resolve (submitted to the dispatcher)
  std::uint64_t snapshot_saves = 0, snapshot_failures = 0;
};

class Alerting final {
 public:
  Alerting(Config config, common::LogFn log = {});
  ~Alerting();
  Alerting(const Alerting&) = delete;
  Alerting& operator=(const Alerting&) = delete;

  // Starts the dispatcher (opens the outbox: what a crash left is resent), the watchdog and the
  // snapshot saver. Fails (with why) when the outbox or a sink is unusable.
  common::Result<void> start();
  // After Loop::stop (which ran on_stop: final snapshot handed to the saver): waits
  // (bounded) for the snapshot and the outbox to be on disk, then stops the threads.
  void stop();

  // The loop's steps (engine thread). "alerts.restore" goes first (its start restores the
  // snapshot before any room reads the engine); "alerts" after the engine step: the batch's raw
  // events (naive mode, broker restart notes), then its alert decisions; its stop is the last
  // batch's alerts and the final snapshot.
  server::Step restore_step();
  server::Step step();

  void on_start(core::Engine& engine, core::MonoTime now);
  void on_event(core::Engine& engine, const core::Event& event);
  void after_batch(core::Engine& engine, core::MonoTime now);
  void on_stop(core::Engine& engine, core::MonoTime now);

  // Fleet incidents not closed, for the retained presence/fleet message (any thread).
  std::uint32_t incidents_open() const {
    return static_cast<std::uint32_t>(incidents_open_.load());
  }

  // SIGHUP (issue 19 item 11; docs/runbook.md "Silencing"): replaces the silences that came from
  // alerts.silences with these; API silences are kept. Engine thread (Loop::post). Returns the
  // number of config silences now in force.
  std::size_t replace_config_silences(const std::vector<SilenceConfig>& silences,
                                      core::MonoTime now);

  // The policy (mode: presence) once on_start ran, else nullptr. Engine thread only: the /v1 API
  // reads it through Loop::post (presence/server/api_backend.h).
  core::AlertPolicy* policy() { return policy_.get(); }

  // Sees every alert intent handed to the outbox, in order, on the engine thread (the /v1/alerts
  // record of what was sent, presence/server/api_backend.h). Set before Loop::start().
  void set_intent_observer(std::function<void(const std::vector<core::AlertIntent>&)> observer) {
    intent_observer_ = std::move(observer);
  }

  // Before start(): a fixed slice of this many devices per batch instead of the ~2 ms budget
  // (tests: slice boundaries independent of the machine's speed). 0 = the budget.
  void set_snapshot_slice_devices(std::size_t devices) {
    slice_fixed_ = devices;
    if (devices > 0) slice_devices_ = devices;
  }

  // The numbers /metrics shows (any thread; api::render_prometheus writes the text).
  api::AlertMetrics metrics() const;
  // Empty, or why presenced is not fully ready: what it cannot persist (any thread; /readyz).
  std::string not_ready_reason() const;

  // HA pair (issue 13): before start(), the dispatcher's "may I send?" gate (presence/ha/node.h).
  void set_send_gate(std::function<alert::DispatcherConfig::Gate(
                         const std::vector<alert::OutboxEntry>&)> gate,
                     std::function<void(const std::vector<alert::OutboxEntry>&)> after_send) {
    gate_ = std::move(gate);
    after_send_ = std::move(after_send);
  }
  // HA: DispatcherConfig::queued / dropped (the leader's per-page records, docs/ha.md).
  void set_queue_hooks(std::function<void(const std::vector<alert::OutboxEntry>&)> queued,
                       std::function<void(const std::vector<alert::OutboxEntry>&)> dropped) {
    queued_ = std::move(queued);
    dropped_ = std::move(dropped);
  }
  // Any thread: every unsent outbox entry (alert::Outbox::unsent).
  std::vector<alert::OutboxEntry> outbox_unsent() const {
    return dispatcher_ ? dispatcher_->unsent() : std::vector<alert::OutboxEntry>{};
  }
  // Any thread: a page decided outside the engine (the HA peer-health page; decided_wall_ms 0 =
  // now), or a dead HA leader's page handed off with its original decided time.
  void submit_external(core::AlertIntent intent, std::int64_t decided_wall_ms = 0) {
    if (!dispatcher_) return;
    if (decided_wall_ms != 0) dispatcher_->submit_decided(std::move(intent), decided_wall_ms);
    else dispatcher_->submit({std::move(intent)});
  }
  // Engine thread (Loop::post from the HA node, docs/ha.md "Adoption of the log's open pages"):
  // the dedup keys the notification log shows open at our election. Device keys whose page our
  // policy does not have firing are kept and adopted (core::AlertPolicy::adopt_open_pages) as
  // soon as our view is warm (restart grace over, not blind): now, or at the end of a batch.
  // Other keys (groups, incidents, stragglers, presenced's own) are left as the log shows.
  void adopt_open_pages(core::Engine& engine, const std::vector<std::string>& open_keys,
                        core::MonoTime now);
  // Any thread: our own later unsent decisions for this sink and key (alert::Outbox::later).
  std::vector<std::pair<core::AlertIntent::Action, std::int64_t>> outbox_later(
      const std::string& sink, const std::string& dedup_key, std::int64_t wall_ms) const {
    return dispatcher_ ? dispatcher_->later(sink, dedup_key, wall_ms)
                       : std::vector<std::pair<core::AlertIntent::Action, std::int64_t>>{};
  }
  // Any thread: the outbox holds this page for this sink, unsent (alert::Outbox::holds).
  bool outbox_holds(const std::string& sink, const std::string& dedup_key,
                    core::AlertIntent::Action action, std::int64_t wall_ms,
                    std::int64_t window_ms) const {
    return dispatcher_ && dispatcher_->holds(sink, dedup_key, action, wall_ms, window_ms);
  }

 private:
  // One slice of the snapshot under way (core/snapshot_slicer.h); the last one hands the copy
  // to the saver. at_once: the whole rest in one step (the final snapshot at SIGTERM).
  void snapshot_slice(core::Engine& engine, bool at_once = false);
  // Drops the silences from alerts.silences and adds these; the count now in force.
  std::size_t apply_config_silences(const std::vector<SilenceConfig>& silences,
                                    core::MonoTime now);
  void submit(std::vector<core::AlertIntent>& intents);
  // Context that is not a page (issue 18): Notify intents for PagerDuty change events, Teams,
  // Alertmanager (info), Slack and webhooks.
  void note(std::string cls, std::string summary, core::MonoTime at,
            std::vector<std::pair<std::string, std::string>> details = {});
  void note_silences(core::MonoTime now);

  Config config_;
  common::LogFn log_;
  std::function<alert::DispatcherConfig::Gate(const std::vector<alert::OutboxEntry>&)> gate_;
  std::function<void(const std::vector<alert::OutboxEntry>&)> after_send_;
  std::function<void(const std::vector<alert::OutboxEntry>&)> queued_, dropped_;
  std::unique_ptr<core::AlertPolicy> policy_;  // mode: presence
  core::NaiveAlerts naive_;                    // mode: naive
  bool naive_blind_ = false;
  bool firing_known_ = false;  // engine thread: alerts_firing_ counted since the restore
  std::unique_ptr<alert::Dispatcher> dispatcher_;
  std::unique_ptr<alert::Watchdog> watchdog_;
  store::SnapshotStore snapshots_;
  store::WallAnchor anchor_;
  core::MonoTime next_snapshot_{};
  bool snapshot_due_ = false;
  core::MonoTime last_snapshot_{};
  std::vector<core::AlertIntent> intents_;
  std::function<void(const std::vector<core::AlertIntent>&)> intent_observer_;

  // The engine thread copies the state in slices, the saver (presence/store/saver.h) writes it.
  // kSliceBudget: the engine-thread time one slice aims at (issue 16 item 3: no pause over 10 ms
  // at 1 M devices; 2 ms leaves room for a slow slice on a loaded machine). The slice size in
  // devices follows the measured copy rate.
  static constexpr std::chrono::microseconds kSliceBudget{2000};
  static constexpr std::size_t kMinSliceDevices = 1024, kMaxSliceDevices = 1u << 20;
  core::SnapshotSlicer slicer_;
  std::size_t slice_devices_ = 16384;
  std::size_t slice_fixed_ = 0;
  std::chrono::nanoseconds slice_pause_max_{0}, slice_total_{0};  // of the copy under way
  store::SnapshotSaver saver_;

  // Read by /metrics and the watchdog from other threads.
  std::atomic<bool> healthy_{false};
  std::atomic<std::uint64_t> triggers_{0}, resolves_{0}, notices_{0};
  std::atomic<std::uint64_t> incidents_open_{0}, alerts_firing_{0}, alerts_pending_{0},
      devices_held_{0}, policy_counters_[8] = {}, devices_unreachable_{0};
  // Of the last finished snapshot: its longest slice, all its slices, how many; and the longest
  // slice since start (the SIGTERM copy is not counted: nothing waits for the engine then).
  std::atomic<std::int64_t> snapshot_pause_us_{0}, snapshot_copy_us_{0}, snapshot_pause_max_us_{0};
  std::atomic<std::uint64_t> snapshot_slices_{0};
  std::atomic<std::int64_t> snapshot_restore_us_{0};
  std::atomic<bool> restored_{false};
  // Engine thread only: the stage and scope each incident was last logged with (one line per change).
  std::map<std::uint32_t, std::pair<core::IncidentStage, std::string>> logged_stage_;
  // Engine thread only: context notes (issue 18).
  std::map<std::uint64_t, core::Silence> active_silences_;  // by id, as last noted
  core::MonoTime next_silence_check_{};
  core::MonoTime last_broker_note_{};
  bool broker_noted_ = false;
  void log_incidents();
  // Engine thread: adoption waiting for a warm view (adopt_open_pages), applied in after_batch.
  std::vector<core::DeviceIndex> adopt_pending_;
  void apply_adoption(core::Engine& engine, core::MonoTime now);
  void check_persistence(core::MonoTime now);
  // presence.max_devices refusing new ids: paged once (presence/self/device_cap), resolved after
  // kDeviceCapQuiet without a refusal (issue 19 item 9).
  void check_device_cap(const core::Engine& engine, core::MonoTime now);
  bool cap_paged_ = false;
  // presenced overloaded for overload.alert_after without a break: paged once
  // (presence/self/overloaded), resolved when it catches up (issue 16).
  void check_overload(const core::Engine& engine, core::MonoTime now);
  core::OverloadPager overload_pager_{config_.overload.alert_after};
  std::uint64_t cap_refused_seen_ = 0;
  core::MonoTime cap_last_refusal_{};
  std::atomic<bool> persist_failing_{false};
  mutable std::mutex persist_mu_;
  std::string persist_problem_;
};

}  // namespace presence::app
