// Does presenced know it is behind? (issue 16: flat out with heartbeats sent directly, presenced
// fell 11.6 s behind and the broker dropped 1.06 M heartbeats for it, a slow QoS 0 subscriber;
// each lost heartbeat is a device judged silent, so an overloaded monitor pages healthy devices.)
//
// Pure: the run loop samples its own signals once per batch and feeds them here with the batch's
// now; this decides when presenced is overloaded and when it has caught up, with hysteresis, and
// the loop turns the answer into EventKind::OverloadBegan / OverloadEnded for the engine (which
// then judges no silence: engine.cpp, "Overload"). Signals, any one of which is enough:
//
// - ingest lag: the age of the oldest message of the batch when the engine takes it
//   (received by the MQTT client -> engine);
// - inbox depth: messages waiting for the engine;
// - broker-reported drops: a counter the broker publishes that grew (Mosquitto
//   `$SYS/broker/publish/messages/dropped`), i.e. messages lost somewhere on the broker. Global
//   to the broker, so it can be another slow subscriber's: a false "overloaded" only delays
//   verdicts on silence, a missed one convicts healthy devices;
// - a stall: the engine thread did not run for longer than lag_limit although it wakes every
//   tick_interval (Lifeguard's own missed timers: a starved or stopped process, a swap storm).
//   Its sockets filled meanwhile; what arrives next is old, and silence in between was not
//   observed;
// - lost probes: presenced's own probe messages, published through the broker to itself with a
//   sequence number, that did not come back (a gap in the sequence, or one outstanding for longer
//   than lag_limit): broker-independent proof that messages to presenced are lost or late.
//
// Overload ends when no signal has fired for clear_after (a flood often comes in waves).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "presence/core/time.h"

namespace presence::core {

struct OverloadConfig {
  Duration lag_limit{std::chrono::seconds(2)};   // oldest message older than this: behind
  std::uint32_t inbox_limit = 200'000;           // more messages waiting than this: behind
  Duration clear_after{std::chrono::seconds(5)};  // every signal quiet this long: caught up
  // Not the detector's: overloaded this long without a break pages "presenced overloaded" once
  // (presence/self/overloaded; presence/app/alerting.cpp).
  Duration alert_after{std::chrono::minutes(2)};
  bool operator==(const OverloadConfig&) const = default;
};

// One sample per batch. Unknown signals stay at their defaults.
struct OverloadSample {
  Duration lag{0};
  Duration stall{0};  // since the previous batch began
  std::size_t inbox_depth = 0;
  // Cumulative broker drop counter as last published, if the broker publishes one.
  std::optional<std::uint64_t> broker_dropped;
  // Cumulative count of own probe messages known lost (gaps, or overdue).
  std::uint64_t probes_lost = 0;
};

class OverloadDetector {
 public:
  explicit OverloadDetector(OverloadConfig config = {}) : config_(config) {}

  // Feed the sample taken at now. Returns true (overload began) or false (it ended) on a change,
  // nullopt otherwise. why() says which signal fired last.
  std::optional<bool> observe(MonoTime now, const OverloadSample& sample);

  bool overloaded() const { return overloaded_; }
  const std::string& why() const { return why_; }
  std::uint64_t episodes() const { return episodes_; }
  const OverloadConfig& config() const { return config_; }

 private:
  OverloadConfig config_;
  bool overloaded_ = false;
  std::int64_t last_signal_ = 0;
  std::optional<std::uint64_t> dropped_;  // last broker counter seen
  std::uint64_t probes_lost_ = 0;
  std::uint64_t episodes_ = 0;
  std::string why_;
};

// The "presenced overloaded" page (issue 16): a short overload (a burst) only delays verdicts on
// silence; one that lasts alert_after without a break is paged once, as presenced's own problem
// (presence/self/overloaded), and resolved when it ends. Pure, fed once per batch with the
// engine's overload state and the batch's now (presence/app/alerting.cpp turns the answer into
// an AlertIntent); tested at T-1, T, T+1 in test/unit/core/overload_test.cpp.
class OverloadPager {
 public:
  enum class Page { Trigger, Resolve };

  explicit OverloadPager(Duration alert_after) : alert_after_(alert_after) {}

  // Overloaded since `since` continuously for alert_after (now - since >= alert_after) pages;
  // the first batch not overloaded resolves what was paged. A break restarts the clock.
  std::optional<Page> observe(MonoTime now, bool overloaded) {
    if (overloaded && !overloaded_) since_ = now;
    overloaded_ = overloaded;
    const bool page = overloaded && now - since_ >= alert_after_;
    if (page == paged_) return std::nullopt;
    paged_ = page;
    return page ? Page::Trigger : Page::Resolve;
  }

  bool paged() const { return paged_; }
  // How long the current (or last) overload has lasted at now.
  Duration overloaded_for(MonoTime now) const { return now - since_; }

 private:
  Duration alert_after_;
  bool overloaded_ = false;
  bool paged_ = false;
  MonoTime since_{};
};

}  // namespace presence::core
