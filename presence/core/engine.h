// The only entry point adapters call (STYLE.md: "engine.* wires the above").
// Pure and deterministic: same events + same times = same decisions. Not thread-safe; the app
// owns one engine on one thread and feeds it in batches with one "now" per batch (habit 3).
#pragma once

#include <array>
#include <cstddef>
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

class Engine {
 public:
  explicit Engine(const Config& config = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Interning: ids become dense indices once; hot-path events carry the index.
  DeviceIndex intern(std::string_view id);
  std::optional<DeviceIndex> find(std::string_view id) const;
  std::string_view id_of(DeviceIndex device) const;
  std::size_t size() const;

  // Labels (firmware, site, model...) from birth/heartbeat JSON; used for fleet segments.
  void set_label(DeviceIndex device, std::string_view key, std::string_view value);
  std::vector<Label> labels(DeviceIndex device) const;

  // Feed one event. Events are expected in non-decreasing time; an event older than the engine's
  // current time is processed at the current time.
  void on_event(const Event& event);
  // Advance time: fires grace windows and timeouts due at or before now.
  void tick(MonoTime now);

  // Decisions since the last drain are appended to out (the engine's buffer is then cleared).
  void drain(std::vector<Transition>& out);
  void drain_alerts(std::vector<AlertIntent>& out);

  DeviceView view(DeviceIndex device) const;
  // Device count per State, indexed by static_cast<size_t>(State).
  std::array<std::size_t, 5> counts() const;
  bool blind() const;             // broker connection lost (IngestLost without IngestRestored)
  bool in_restart_grace() const;  // after IngestRestored / BrokerRestarted, until it settles
  MonoTime now() const;           // latest time seen (events and ticks)

  // Snapshots: export every known device; restore before the first event (state is kept but
  // needs fresh evidence: restore enters restart grace).
  std::vector<DeviceSnapshot> snapshot() const;
  void restore(const std::vector<DeviceSnapshot>& devices, MonoTime now);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presence::core
