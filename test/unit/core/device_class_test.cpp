// Device classes and sleeping devices (issue 14): a class gives a device its own heartbeat clock
// and offline grace; an "asleep" birth keeps a device up without judging its silence. Simulated
// clock, every window at T-1, T, T+1 ms (STYLE.md habit 2).
#include <doctest/doctest.h>

#include <vector>

#include "presence/core/engine.h"

using namespace presence::core;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kSec = 1000;
constexpr std::int64_t kHour = 3600 * kSec;

Event ev(EventKind kind, DeviceIndex device, std::int64_t at_ms) {
  Event e;
  e.kind = kind;
  e.device = device;
  e.at = mono_ms(at_ms);
  if (kind == EventKind::Disconnected) e.reason = DisconnectReason::LastWill;
  return e;
}

std::vector<Transition> drain(Engine& engine) {
  std::vector<Transition> out;
  engine.drain(out);
  return out;
}

Config with_battery() {
  Config c;  // defaults: floor 15 s, ceiling 30 min, offline_grace 30 s
  DeviceClass battery;
  battery.name = "battery";
  battery.heartbeat_timeout_floor = 1h;
  battery.heartbeat_timeout_ceiling = 25h;
  battery.offline_grace = 2min;
  c.device_classes.push_back(battery);
  return c;
}

}  // namespace

TEST_CASE("class_config: zero keeps the default, set values override, out of range is class 0") {
  const Config c = with_battery();
  const Config b = class_config(c, 1);
  CHECK(b.heartbeat_timeout_floor == Duration(1h));
  CHECK(b.heartbeat_timeout_ceiling == Duration(25h));
  CHECK(b.offline_grace == Duration(2min));
  CHECK(b.online_stable_for == c.online_stable_for);
  CHECK(class_config(c, 0).heartbeat_timeout_floor == c.heartbeat_timeout_floor);
  CHECK(class_config(c, 7).offline_grace == c.offline_grace);
  CHECK(config_error(c).empty());
}

TEST_CASE("config_error names the bad device class") {
  Config c = with_battery();
  c.device_classes.push_back(c.device_classes[0]);
  CHECK(config_error(c) == "device_classes[1].name: class 'battery' is defined twice");
  c = with_battery();
  c.device_classes[0].heartbeat_timeout_ceiling = 10min;  // below its own 1 h floor
  CHECK(config_error(c) ==
        "device_classes[0].heartbeat_timeout_ceiling: must be at least the class's "
        "heartbeat_timeout_floor (1h)");
  c = with_battery();
  c.device_classes[0].name.clear();
  CHECK(config_error(c) == "device_classes[0].name: is required");
}

TEST_CASE("a battery device is judged by its class's clock, a mains device by the default") {
  Engine engine(with_battery());
  const DeviceIndex mains = engine.intern("mains");
  const DeviceIndex sensor = engine.intern("sensor");
  engine.set_device_class(sensor, 1);
  CHECK(engine.device_class(sensor) == 1);
  CHECK(engine.device_class(mains) == 0);
  // Both report every 10 min (4 intervals: past heartbeat_min_samples).
  for (int i = 0; i <= 4; ++i) {
    engine.on_event(ev(EventKind::Heartbeat, mains, i * 600 * kSec));
    engine.on_event(ev(EventKind::Heartbeat, sensor, i * 600 * kSec));
  }
  drain(engine);
  const std::int64_t last = 2400 * kSec;
  // mains: 3 x 10 min = 30 min = the default ceiling. sensor: 30 min raised to its 1 h floor.
  CHECK(engine.view(mains).heartbeat_timeout == Duration(30min));
  CHECK(engine.view(sensor).heartbeat_timeout == Duration(1h));
  engine.tick(mono_ms(last + 30 * 60 * kSec));
  auto t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].device == mains);
  CHECK(t[0].to == State::Suspect);
  engine.tick(mono_ms(last + 30 * 60 * kSec + 30 * kSec));  // mains: default 30 s grace
  t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].device == mains);
  CHECK(t[0].to == State::Offline);
  engine.tick(mono_ms(last + kHour - 1));  // T-1
  CHECK(engine.view(sensor).state == State::Online);
  engine.tick(mono_ms(last + kHour));  // T
  t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].device == sensor);
  CHECK(t[0].to == State::Suspect);
  CHECK(t[0].cause == Cause::HeartbeatTimeout);
  // The class's offline grace (2 min), not the default 30 s.
  engine.tick(mono_ms(last + kHour + 2 * 60 * kSec - 1));
  CHECK(engine.view(sensor).state == State::Suspect);
  engine.tick(mono_ms(last + kHour + 2 * 60 * kSec));
  t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].to == State::Offline);
  engine.tick(mono_ms(last + kHour + 2 * 60 * kSec + 1));
  CHECK(drain(engine).empty());
}

TEST_CASE("a young battery device waits for its class ceiling, not the default one") {
  Engine engine(with_battery());
  const DeviceIndex sensor = engine.intern("sensor");
  engine.set_device_class(sensor, 1);
  engine.on_event(ev(EventKind::Heartbeat, sensor, 0));  // one heartbeat: no interval yet
  drain(engine);
  engine.tick(mono_ms(25 * kHour - 1));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(25 * kHour));
  auto t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].to == State::Suspect);
}

TEST_CASE("changing the class re-arms the timer: a shorter clock fires at its own deadline") {
  Config c = with_battery();
  DeviceClass fast;
  fast.name = "fast";
  fast.heartbeat_timeout_floor = 1s;
  fast.heartbeat_timeout_ceiling = 2s;
  c.device_classes.push_back(fast);
  Engine engine(c);
  const DeviceIndex d = engine.intern("d");
  engine.on_event(ev(EventKind::Heartbeat, d, 0));  // default ceiling: 30 min
  drain(engine);
  engine.set_device_class(d, 2);
  CHECK(engine.view(d).heartbeat_timeout == Duration(2s));
  engine.tick(mono_ms(2 * kSec - 1));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(2 * kSec));
  auto t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].to == State::Suspect);
  engine.set_device_class(d, 9);  // out of range: ignored
  CHECK(engine.device_class(d) == 2);
}

TEST_CASE("asleep: up, silence not judged until the device heartbeats again") {
  Engine engine;
  const DeviceIndex d = engine.intern("homie-1");
  for (int i = 0; i <= 4; ++i) engine.on_event(ev(EventKind::Heartbeat, d, i * 10 * kSec));
  drain(engine);
  Event sleep = ev(EventKind::Connected, d, 41 * kSec);
  sleep.asleep = true;
  engine.on_event(sleep);
  CHECK(drain(engine).empty());  // already online: no transition
  engine.tick(mono_ms(41 * kSec + 24 * kHour));
  CHECK(drain(engine).empty());
  CHECK(engine.view(d).state == State::Online);
  // Awake again: its heartbeats are judged once more.
  const std::int64_t wake = 41 * kSec + 24 * kHour + 1;
  engine.on_event(ev(EventKind::Heartbeat, d, wake));
  const Duration timeout = engine.view(d).heartbeat_timeout;
  engine.tick(mono_ms(wake) + timeout - Duration(1));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(wake) + timeout);
  auto t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].to == State::Suspect);
  CHECK(t[0].cause == Cause::HeartbeatTimeout);
}

TEST_CASE("without asleep the same birth leaves silence judged (the test above can fail)") {
  Engine engine;
  const DeviceIndex d = engine.intern("homie-1");
  for (int i = 0; i <= 4; ++i) engine.on_event(ev(EventKind::Heartbeat, d, i * 10 * kSec));
  engine.on_event(ev(EventKind::Connected, d, 41 * kSec));
  drain(engine);
  engine.tick(mono_ms(41 * kSec + 24 * kHour));
  auto t = drain(engine);
  REQUIRE_FALSE(t.empty());
  CHECK(t[0].to == State::Suspect);
}
