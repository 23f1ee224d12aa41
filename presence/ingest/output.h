// What presenced publishes (retained, versioned JSON; docs/topics.md) and how fast.
// Pure: payload builders and the coalescing rate limiter take times as arguments.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "presence/core/engine.h"

namespace presence::ingest {

// Converts engine MonoTime to wall clock for payloads (one definition: core/time.h).
using WallAnchor = core::WallAnchor;

// "2026-11-21T12:00:00.123Z"
std::string iso8601(std::chrono::system_clock::time_point t);

// presence/devices/{id}:
// {"v":1,"device":id,"state":...,"since":ISO8601,"reason":...,["disconnect_reason":...,]
//  ["parent":id,]"labels":{}}
// down_ancestor: "" or the topmost ancestor down (state "unreachable" and "parent" when the
// device itself is down; docs/topics.md).
std::string device_json(const core::DeviceView& view, const std::vector<core::Label>& labels,
                        const WallAnchor& anchor, const std::string& down_ancestor = {});

struct FleetStatus {
  std::array<std::size_t, 5> counts{};  // per core::State
  std::size_t devices = 0;
  bool broker_connected = false;
  bool blind = false;
  bool restart_grace = false;
  std::uint32_t incidents_open = 0;  // fleet incidents not closed (MqttLink::set_incidents_open)
};
// presence/fleet: {"v":1,"devices":N,"counts":{"online":..},"blind":..,"restart_grace":..,
//                  "incidents_open":..,"ts":..}
std::string fleet_json(const FleetStatus& fleet, std::chrono::system_clock::time_point now);

// Coalescing, rate-limited publish queue (issue 3: "a storm cannot flood the broker";
// post-mortem 000: presenced must not become a storm source itself).
// - A device is queued once however often it changes; its payload is built when it is sent, so
//   the latest state wins.
// - A device is published at most once per coalesce_interval: the first change goes out at
//   once, later ones within the interval are held and sent (latest state) when it ends.
// - A token bucket (burst = one second's worth) bounds messages per second; rate <= 0 means
//   unlimited.
// - Two priorities (issue 19 item 9: a flood of 200,000 junk ids built a backlog that delayed real
//   devices' state by ~140 s). Background: a new device's first state (its transition left
//   Unknown) and the restatement of every device after a reconnect. Both wait behind every real
//   change of a known device; a device waiting in the background that really changes moves up.
class PublishQueue {
 public:
  explicit PublishQueue(double max_per_second, core::Duration coalesce_interval = core::Duration{0});
  void set_rate(double max_per_second);
  void set_coalesce_interval(core::Duration interval) { interval_ = interval; }
  double rate() const { return rate_; }

  void mark(core::DeviceIndex device, core::MonoTime now, bool background = false);
  void mark_fleet() { fleet_dirty_ = true; }
  std::size_t pending() const { return pending_ + (fleet_dirty_ ? 1 : 0); }
  std::size_t pending_background() const { return background_pending_; }

  // Hands out what may be sent at `now`: the fleet message first (if dirty), then devices in the
  // order they became due. Consumes budget for each item handed out and records the send time.
  void take(core::MonoTime now, bool& fleet, std::vector<core::DeviceIndex>& devices);
  // Puts back what could not be sent (broker gone): it goes out first next time.
  void put_back(bool fleet, const std::vector<core::DeviceIndex>& devices);
  // Everything pending, ignoring budget and interval. background false (the final flush at
  // shutdown): first states and restatements stay queued. After a restart with 1 M devices the
  // restatement is 1 M messages (~17 min at 1000/s); flushing it at SIGTERM could not finish in
  // the shutdown budget and presenced was killed before its final snapshot (issue 16 item 3,
  // measured by presence-e2e-bench --fleet). The next start restates every device anyway.
  void take_all(bool& fleet, std::vector<core::DeviceIndex>& devices, bool background = true);

 private:
  struct Held {
    core::MonoTime due;
    core::DeviceIndex device;
    bool operator>(const Held& o) const { return due > o.due; }
  };
  void ensure(core::DeviceIndex device);
  double rate_;
  double tokens_;
  core::Duration interval_;
  bool started_ = false;
  core::MonoTime last_{};
  bool fleet_dirty_ = false;
  // Where a device waits: kNone, kBackground (background_), kReady (ready_) or kHeld (held_). An
  // entry of background_ whose device moved up stays behind, skipped when reached.
  enum : std::uint8_t { kNone = 0, kBackground = 1, kReady = 2, kHeld = 3 };
  void sent(core::DeviceIndex device, core::MonoTime now, std::vector<core::DeviceIndex>& out);
  std::deque<core::DeviceIndex> ready_;  // changes of known devices: sent first
  std::deque<core::DeviceIndex> background_;  // first states, restatements
  std::size_t pending_ = 0;              // devices waiting (each once)
  std::size_t background_pending_ = 0;   // of which in background_
  std::vector<Held> held_;  // min-heap on due
  std::vector<std::uint8_t> queued_;
  std::vector<core::MonoTime> last_sent_;
  std::vector<std::uint8_t> ever_sent_;
};

}  // namespace presence::ingest
