// The only entry point adapters call (STYLE.md: "engine.* wires the above").
// Pure and deterministic: same events + same times = same decisions. Not thread-safe; the app
// owns one engine on one thread and feeds it in batches with one "now" per batch (habit 3).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "presence/core/config.h"
#include "presence/core/decision.h"
#include "presence/core/event.h"

namespace presence::core {

using Label = std::pair<std::string, std::string>;

// Read-only view of one device, for the API, the MQTT publisher and snapshots.
struct DeviceView {
  std::string_view id;
  State state = State::Unknown;
  MonoTime since{};   // when the current state began
  Cause cause = Cause::Connected;
  DisconnectReason disconnect_reason = DisconnectReason::Unknown;
  MonoTime last_seen{};             // last event that proved life
  Duration heartbeat_mean{0};       // observed mean heartbeat interval (0 = none yet)
  Duration heartbeat_timeout{0};    // current adaptive timeout (0 = not heartbeat-judged)
  std::uint64_t session = 0;
};

// What a snapshot keeps per device (presence/store persists it; times are converted to wall
// clock there).
struct DeviceSnapshot {
  std::string id;
  State state = State::Unknown;
  MonoTime since{};
  std::vector<Label> labels;
};

// Monotonic counters for /metrics (names as in docs/core.md).
struct EngineCounters {
  std::uint64_t events = 0;            // device and fleet events fed to on_event
  std::uint64_t stale_events = 0;      // dropped: older session than the device's current one
  std::uint64_t duplicate_events = 0;  // dropped: same session, same news
  std::uint64_t takeover_events = 0;   // disconnects with reason Takeover (never a departure)
  // Heartbeats from another connection within Config::reorder_window of a reported departure:
  // possibly sent before it, not taken as the device being back.
  std::uint64_t reordered_heartbeats = 0;
  std::uint64_t retained_events = 0;   // retained replays ignored (device already known)
  std::uint64_t invalid_events = 0;    // device index out of range / kNoDevice on a device event
  std::uint64_t transitions = 0;       // Transition decisions emitted
  std::uint64_t timers_fired = 0;
  std::uint64_t restart_graces = 0;    // restart graces started
  // Bounds (issue 19 items 3 and 9; Config::max_label_keys, max_label_values, max_devices).
  std::uint64_t label_keys_refused = 0;    // a label with a key beyond max_label_keys
  std::uint64_t label_values_refused = 0;  // a key=value pair beyond max_label_values
  std::uint64_t devices_refused = 0;       // a new id beyond max_devices
  // Expiry (Config::forget_after, forget_unconfirmed_after).
  std::uint64_t devices_forgotten = 0;
  std::uint64_t forget_deferred = 0;  // due, but an observer still needed the device
  std::uint64_t overloads = 0;        // OverloadBegan accepted (issue 16)
};

// Restart grace progress (docs/core.md "Restart grace").
struct RestartGraceStatus {
  bool active = false;
  MonoTime started{};
  MonoTime ends{};              // current end estimate (moves while the returning share grows)
  std::size_t known = 0;        // devices with a state when the grace started
  std::size_t returned = 0;     // devices with fresh evidence since the grace started
};

// Decision consumers inside the core (fleet/policy, issue 3) plug in here. The engine calls the
// observer synchronously, in decision order, on its own thread; it may read the engine (view,
// labels, id_of) but must not feed it. Non-owning; set before the first event.
class DecisionObserver {
 public:
  virtual ~DecisionObserver() = default;
  virtual void on_transition(const Transition& /*t*/) {}
  // Every accepted (not stale, duplicate or retained) Connected event, also those that cause no
  // transition (e.g. while flapping): the reconnect rate.
  virtual void on_connect(DeviceIndex /*device*/, MonoTime /*at*/) {}
  // A label changed (set_label with the current value is not announced; "" = removed).
  virtual void on_label(DeviceIndex /*device*/, std::string_view /*key*/,
                        std::string_view /*value*/) {}
  virtual void on_blind(bool /*blind*/, MonoTime /*at*/) {}
  virtual void on_restart_grace(bool /*active*/, MonoTime /*at*/) {}
  // OverloadBegan / OverloadEnded accepted (not repeated ones).
  virtual void on_overload(bool /*overloaded*/, MonoTime /*at*/) {}
  // After the engine fired its own timers up to now (Engine::tick only, not per event).
  virtual void on_tick(MonoTime /*now*/) {}
  // Engine::drain_alerts forwards here.
  virtual void drain_alerts(std::vector<AlertIntent>& /*out*/) {}
  // Expiry (Config::forget_after): asked when a device is due to be forgotten; false keeps it
  // (an open page, a fleet incident hold) and the engine asks again one expiry window later.
  virtual bool may_forget(DeviceIndex /*device*/) const { return true; }
  // The device is forgotten: drop every per-device datum. Its index is reused for a new id
  // after the second Engine::drain from now; id_of(device) still answers until then.
  virtual void on_forget(DeviceIndex /*device*/) {}
};

struct DeviceCopy;  // presence/core/snapshot_slicer.h

class Engine {
 public:
  explicit Engine(const Config& config = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Interning: ids become dense indices once; hot-path events carry the index.
  // An empty id, one longer than kMaxIdBytes or one holding a NUL byte is refused with kNoDevice
  // (MQTT forbids U+0000 in topics; the snapshot's index tokens rely on no id starting with one).
  // Expiry (Config::forget_after) can forget a device at any tick: intern per message and feed
  // the event before the second drain() from now (a forgotten id's index is reused after two
  // drains; an event for it before that revives the id under a new index).
  static constexpr std::size_t kMaxIdBytes = 4096;
  DeviceIndex intern(std::string_view id);
  std::optional<DeviceIndex> find(std::string_view id) const;
  std::string_view id_of(DeviceIndex device) const;
  // Index range: every device index is below size(); forgotten indices in it are holes (view()
  // returns an empty id, snapshot() skips them) until a new id reuses them, which happens only
  // after two drain()s: the batch that forgot a device and the next one still read its id.
  std::size_t size() const;
  // Devices known (size() minus holes): what the API and /metrics call "devices".
  std::size_t device_count() const;
  // True if device is a known, not forgotten, index.
  bool known(DeviceIndex device) const;

  // Pre-size for a fleet (bench, restore): avoids rehashing while interning.
  void reserve(std::size_t devices, std::size_t id_bytes = 0);

  // Labels (firmware, site, model...) from birth/heartbeat JSON; used for fleet segments.
  // Keys and values are interned; devices sharing a label set share its storage. An empty value
  // removes the key. Setting the current value again costs no allocation (ingest repeats labels
  // with every message).
  void set_label(DeviceIndex device, std::string_view key, std::string_view value);
  std::vector<Label> labels(DeviceIndex device) const;

  // Device class (Config::device_classes, 1-based; 0 = none): which heartbeat clock and offline
  // grace judge the device from now on (issue 14). Cheap when unchanged (ingest sets it with
  // every message). Out-of-range classes are ignored.
  void set_device_class(DeviceIndex device, std::uint8_t device_class);
  std::uint8_t device_class(DeviceIndex device) const;

  // Feed one event. Events are expected in non-decreasing time; an event older than the engine's
  // current time is processed at the current time.
  // Pipelined: up to 7 events may wait while their devices are prefetched (a million device
  // records do not fit in cache; the hot path is memory latency). Every other Engine method
  // processes them first, so results read through the engine are exact; an observer sees their
  // decisions at the latest on the next Engine call (tick, drain, flush, ...).
  void on_event(const Event& event);
  // Same as on_event for each, in order, then flush().
  void on_events(const Event* events, std::size_t count);
  // Process events still waiting in the pipeline.
  void flush();
  // Advance time: fires grace windows and timeouts due at or before now.
  void tick(MonoTime now);

  // Fleet/policy wiring (see DecisionObserver). nullptr detaches.
  void set_observer(DecisionObserver* observer);

  // Decisions since the last drain are appended to out (the engine's buffer is then cleared).
  void drain(std::vector<Transition>& out);
  // Ids forgotten since the last call (in order), e.g. to clear their retained output topics.
  // Call it with every drain(): the list grows until then.
  void drain_forgotten(std::vector<std::string>& out);
  void drain_alerts(std::vector<AlertIntent>& out);

  DeviceView view(DeviceIndex device) const;
  // Device count per State, indexed by static_cast<size_t>(State).
  std::array<std::size_t, 5> counts() const;
  bool blind() const;             // broker connection lost (IngestLost without IngestRestored)
  bool in_restart_grace() const;  // after IngestRestored / BrokerRestarted, until it settles
  bool overloaded() const;        // OverloadBegan without OverloadEnded: silence is not judged
  MonoTime now() const;           // latest time seen (events and ticks)
  RestartGraceStatus restart_grace() const;
  EngineCounters counters() const;
  const Config& config() const;
  // Bytes held by per-device structures (records, timers, ids, intern table), for bytes/device.
  std::size_t memory_bytes() const;

  // Snapshots: export every known device; restore before the first event (state is kept but
  // needs fresh evidence: restore enters restart grace).
  std::vector<DeviceSnapshot> snapshot() const;
  void restore(const std::vector<DeviceSnapshot>& devices, MonoTime now);
  // Sliced snapshots (core/snapshot_slicer.h, issue 16 item 3): copies the devices with these
  // indices into out.entries (a hole for a forgotten index or one at or past size()).
  void copy_devices(DeviceIndex first, DeviceIndex last, DeviceCopy& out) const;
  void copy_devices(const DeviceIndex* devices, std::size_t count, DeviceCopy& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presence::core
