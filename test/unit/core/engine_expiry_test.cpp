// Device expiry (issue 19 item 9: 200,000 junk ids were all kept for good): Config::
// forget_unconfirmed_after for ids that sent one message, forget_after for every other device,
// the observer's veto, index reuse after drain(), memory after a flood. Exact boundaries T-1, T.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "presence/core/engine.h"

using namespace presence::core;
using namespace std::chrono_literals;

namespace {

Event ev(EventKind kind, DeviceIndex device, std::int64_t at_ms) {
  Event e;
  e.kind = kind;
  e.device = device;
  e.at = mono_ms(at_ms);
  e.source = Source::Replay;
  return e;
}
void feed(Engine& engine, EventKind kind, DeviceIndex d, std::int64_t at) {
  const Event e = ev(kind, d, at);
  engine.on_events(&e, 1);
}

struct ForgetObserver : DecisionObserver {
  bool allow = true;
  int asked = 0;
  std::vector<DeviceIndex> forgotten;
  std::vector<std::string> ids;  // id_of at on_forget time
  const Engine* engine = nullptr;
  bool may_forget(DeviceIndex) const override {
    ++const_cast<ForgetObserver*>(this)->asked;
    return allow;
  }
  void on_forget(DeviceIndex d) override {
    forgotten.push_back(d);
    ids.emplace_back(engine->id_of(d));
  }
};

constexpr std::int64_t kGrace = 30'000;              // Config::offline_grace default
constexpr std::int64_t kUnconfirmed = 10 * 60'000;  // forget_unconfirmed_after default
constexpr std::int64_t kDay = 24 * 3600'000LL;

}  // namespace

TEST_CASE("defaults: forget_unconfirmed_after 10 min, forget_after 30 days, max_devices 2,000,000") {
  const Config c;
  CHECK(c.forget_unconfirmed_after == 10min);
  CHECK(c.forget_after == std::chrono::hours(24 * 30));
  CHECK(c.max_devices == 2000000);
}

TEST_CASE("an id seen once is forgotten forget_unconfirmed_after after it went offline, not before") {
  Engine engine;
  const DeviceIndex d = engine.intern("junk-1");
  feed(engine, EventKind::Disconnected, d, 0);
  engine.tick(mono_ms(kGrace));
  REQUIRE(engine.view(d).state == State::Offline);
  const std::int64_t T = kGrace + kUnconfirmed;  // from the later of last evidence and the change
  engine.tick(mono_ms(T - 1));
  CHECK(engine.find("junk-1") == d);
  CHECK(engine.device_count() == 1);
  CHECK(engine.counters().devices_forgotten == 0);
  engine.tick(mono_ms(T));
  CHECK_FALSE(engine.find("junk-1"));
  CHECK_FALSE(engine.known(d));
  CHECK(engine.view(d).id.empty());
  CHECK(engine.device_count() == 0);
  CHECK(engine.counts()[static_cast<std::size_t>(State::Offline)] == 0);
  CHECK(engine.counters().devices_forgotten == 1);
  CHECK(engine.snapshot().empty());
  std::vector<std::string> ids;
  engine.drain_forgotten(ids);
  CHECK(ids == std::vector<std::string>{"junk-1"});
}

TEST_CASE("a confirmed device offline is kept for forget_after (T-1) and forgotten at T") {
  Engine engine;
  const DeviceIndex d = engine.intern("dev");
  feed(engine, EventKind::Connected, d, 0);
  feed(engine, EventKind::Disconnected, d, 1000);  // a second message: a device, not a one-off
  engine.tick(mono_ms(1000 + kGrace));
  REQUIRE(engine.view(d).state == State::Offline);
  const std::int64_t T = 1000 + kGrace + 30 * kDay;
  engine.tick(mono_ms(1000 + kGrace + kUnconfirmed + 1));
  CHECK(engine.known(d));  // not a one-off: the short window does not apply
  engine.tick(mono_ms(T - 1));
  CHECK(engine.known(d));
  engine.tick(mono_ms(T));
  CHECK_FALSE(engine.known(d));
  CHECK_FALSE(engine.find("dev"));
}

TEST_CASE("forget_after 0 and forget_unconfirmed_after 0 mean never") {
  Config c;
  c.forget_after = 0ms;
  c.forget_unconfirmed_after = 0ms;
  Engine engine(c);
  const DeviceIndex a = engine.intern("a");
  const DeviceIndex b = engine.intern("b");
  feed(engine, EventKind::Disconnected, a, 0);
  feed(engine, EventKind::Connected, b, 0);
  feed(engine, EventKind::Disconnected, b, 1);
  engine.tick(mono_ms(400 * kDay));
  CHECK(engine.known(a));
  CHECK(engine.known(b));
  CHECK(engine.counters().devices_forgotten == 0);
}

TEST_CASE("an online device is never forgotten, even one that sent a single message") {
  Engine engine;
  const DeviceIndex d = engine.intern("status-only");
  feed(engine, EventKind::Connected, d, 0);  // no heartbeats: its session says it is up
  engine.tick(mono_ms(400 * kDay));
  CHECK(engine.view(d).state == State::Online);
  CHECK(engine.known(d));
}

TEST_CASE("an interned id that never sent a usable event expires from its interning") {
  Engine engine;
  engine.tick(mono_ms(5000));
  const DeviceIndex d = engine.intern("retained-heartbeat-only");
  engine.tick(mono_ms(5000));  // the batch's tick: the expiry clock starts at the engine's time
  engine.tick(mono_ms(5000 + kUnconfirmed - 1));
  CHECK(engine.known(d));
  engine.tick(mono_ms(5000 + kUnconfirmed));
  CHECK_FALSE(engine.known(d));
}

TEST_CASE("an id interned while the engine's time lags is not expired by its own first event") {
  Engine engine;  // engine time 0; the caller's clock is at 10 hours
  const DeviceIndex d = engine.intern("late-start");
  const std::int64_t t = 10 * 3600'000LL;
  feed(engine, EventKind::Connected, d, t);
  CHECK(engine.counters().devices_forgotten == 0);
  CHECK(engine.find("late-start") == d);
  CHECK(engine.view(d).state == State::Online);
}

// Found by ingest_presets_test at the merge: ingest sets a new device's class and labels before
// its first event. The class change must not arm the expiry clock from the unset changed_at (0):
// at a late engine time that forgot the device at once, and its labels with it.
TEST_CASE("a class set on a device interned late, before its first event, neither forgets it nor drops its labels") {
  Config c;
  c.device_classes.push_back(DeviceClass{});
  c.device_classes.back().name = "battery";
  Engine engine(c);
  const std::int64_t t = 10 * 3600'000LL;
  engine.tick(mono_ms(t));  // the engine has run for 10 hours
  const DeviceIndex d = engine.intern("garden/soil");
  engine.set_device_class(d, 1);
  engine.set_label(d, "class", "battery");
  engine.tick(mono_ms(t + 1));
  feed(engine, EventKind::Heartbeat, d, t + 2);
  CHECK(engine.counters().devices_forgotten == 0);
  CHECK(engine.find("garden/soil") == d);
  CHECK(engine.device_class(d) == 1);
  const auto labels = engine.labels(d);
  REQUIRE(labels.size() == 1);
  CHECK(labels[0].first == "class");
  CHECK(labels[0].second == "battery");
}

TEST_CASE("evidence restarts the expiry clock") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  feed(engine, EventKind::Disconnected, d, 0);
  engine.tick(mono_ms(kGrace + kUnconfirmed - 10));
  feed(engine, EventKind::Disconnected, d, kGrace + kUnconfirmed - 10);  // duplicate: no evidence
  feed(engine, EventKind::Connected, d, kGrace + kUnconfirmed - 5);      // evidence, confirmed
  feed(engine, EventKind::Disconnected, d, kGrace + kUnconfirmed - 4);
  engine.tick(mono_ms(kGrace + kUnconfirmed + 60'000));
  CHECK(engine.known(d));
}

TEST_CASE("nothing is forgotten while blind or in restart grace; expiry resumes after") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  feed(engine, EventKind::Disconnected, d, 0);
  engine.tick(mono_ms(kGrace));
  feed(engine, EventKind::IngestLost, kNoDevice, kGrace + 1);
  engine.tick(mono_ms(kGrace + 2 * kUnconfirmed));
  CHECK(engine.known(d));  // presenced could not see whether the id spoke
  feed(engine, EventKind::IngestRestored, kNoDevice, kGrace + 2 * kUnconfirmed);
  engine.tick(mono_ms(kGrace + 2 * kUnconfirmed + 1000));
  CHECK(engine.in_restart_grace());
  CHECK(engine.known(d));
  engine.tick(mono_ms(kGrace + 2 * kUnconfirmed + 11 * 60'000));  // grace over (<= 10 min)
  CHECK_FALSE(engine.in_restart_grace());
  CHECK_FALSE(engine.known(d));
}

TEST_CASE("the observer's veto keeps a device; it is asked again one window later") {
  Engine engine;
  ForgetObserver obs;
  obs.engine = &engine;
  obs.allow = false;
  engine.set_observer(&obs);
  const DeviceIndex d = engine.intern("paged");
  feed(engine, EventKind::Disconnected, d, 0);
  const std::int64_t T = kGrace + kUnconfirmed;
  engine.tick(mono_ms(T));
  CHECK(obs.asked == 1);
  CHECK(engine.known(d));
  CHECK(engine.counters().forget_deferred == 1);
  obs.allow = true;
  engine.tick(mono_ms(T + kUnconfirmed - 1));
  CHECK(obs.asked == 1);
  CHECK(engine.known(d));
  engine.tick(mono_ms(T + kUnconfirmed));
  CHECK(obs.asked == 2);
  CHECK_FALSE(engine.known(d));
  CHECK(obs.forgotten == std::vector<DeviceIndex>{d});
  CHECK(obs.ids == std::vector<std::string>{"paged"});  // id_of still answers in on_forget
}

TEST_CASE("a forgotten index is reused only after two drain()s; find() never returns a forgotten id") {
  Engine engine;
  const DeviceIndex keep = engine.intern("keep");
  const DeviceIndex d = engine.intern("gone");
  feed(engine, EventKind::Connected, keep, 0);
  feed(engine, EventKind::Disconnected, d, 0);
  engine.tick(mono_ms(kGrace + kUnconfirmed));
  REQUIRE_FALSE(engine.known(d));
  const DeviceIndex before_drain = engine.intern("new-1");
  CHECK(before_drain != d);            // decisions naming d may still be in flight
  CHECK(engine.id_of(d) == "gone");    // ... and still read their id
  std::vector<Transition> out;
  engine.drain(out);
  CHECK(engine.id_of(d) == "gone");    // the batch's hooks read ids after its drain
  const DeviceIndex after_one = engine.intern("new-2");
  CHECK(after_one != d);
  engine.drain(out);
  const DeviceIndex after_drain = engine.intern("new-3");
  CHECK(after_drain == d);             // reused
  CHECK(engine.id_of(d) == "new-3");
  CHECK(engine.view(d).state == State::Unknown);
  CHECK_FALSE(engine.find("gone"));
  CHECK(engine.find("keep") == keep);
  CHECK(engine.view(keep).state == State::Online);
  // The old id comes back: a new device under a new index.
  const DeviceIndex again = engine.intern("gone");
  CHECK(again != d);
  CHECK(engine.device_count() == 5);
}

TEST_CASE("an event for an id forgotten earlier in the same batch revives it under a new index") {
  Engine engine;
  const DeviceIndex d = engine.intern("late");
  feed(engine, EventKind::Disconnected, d, 0);
  // The event was interned before the expiry timer fired inside the same call.
  const Event e = ev(EventKind::Connected, d, kGrace + kUnconfirmed + 5);
  engine.on_events(&e, 1);
  CHECK(engine.counters().devices_forgotten == 1);
  const auto now = engine.find("late");
  REQUIRE(now);
  CHECK(*now != d);
  CHECK(engine.view(*now).state == State::Online);
}

TEST_CASE("max_devices counts live devices: a forgotten id makes room") {
  Config c;
  c.max_devices = 2;
  Engine engine(c);
  const DeviceIndex a = engine.intern("a");
  engine.intern("b");
  CHECK(engine.intern("c") == kNoDevice);
  feed(engine, EventKind::Disconnected, a, 0);
  engine.tick(mono_ms(kGrace + kUnconfirmed));
  CHECK(engine.intern("c") != kNoDevice);
  CHECK(engine.counters().devices_refused == 1);
}

TEST_CASE("a 200k junk-id flood that expires gives engine memory back (memory_bytes)") {
  Engine engine;
  std::vector<DeviceIndex> real;
  for (int i = 0; i < 1000; ++i) real.push_back(engine.intern("real-device-" + std::to_string(i)));
  for (auto d : real) feed(engine, EventKind::Connected, d, 0);
  std::vector<Transition> out;
  engine.drain(out);
  const std::size_t baseline = engine.memory_bytes();
  std::vector<Event> flood;
  for (int i = 0; i < 200000; ++i) {
    const DeviceIndex j = engine.intern("junk-" + std::to_string(i) + "-0123456789abcdef");
    REQUIRE(j != kNoDevice);
    flood.push_back(ev(EventKind::Disconnected, j, 1000 + i / 1000));  // 200 s at 1,000/s
  }
  engine.on_events(flood.data(), flood.size());
  const std::size_t peak = engine.memory_bytes();
  CHECK(peak > 20 * baseline);
  engine.tick(mono_ms(1000 + 200 + kGrace + kUnconfirmed));
  out.clear();
  engine.drain(out);
  engine.drain(out);
  std::vector<std::string> ids;
  engine.drain_forgotten(ids);
  CHECK(ids.size() == 200000);
  CHECK(engine.counters().devices_forgotten == 200000);
  CHECK(engine.device_count() == 1000);
  CHECK(engine.size() == 1000);
  MESSAGE("memory_bytes baseline " << baseline << ", flood " << peak << ", after expiry "
                                   << engine.memory_bytes());
  CHECK(engine.memory_bytes() <= baseline * 3 / 2);
  for (auto d : real) CHECK(engine.view(d).state == State::Online);
}
