// Overload never convicts (issue 16): between OverloadBegan and OverloadEnded no device goes
// suspect or offline on silence alone; afterwards its silence is counted from the end of the
// overload. A disconnect is evidence and is judged as usual. Exact boundaries T-1, T.
#include <doctest/doctest.h>

#include <chrono>
#include <vector>

#include "presence/core/engine.h"

using namespace presence::core;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kSec = 1000;
constexpr std::int64_t kTimeout = 15 * kSec;
constexpr std::int64_t kGrace = 30 * kSec;

// Timeout fixed at 15 s whatever the samples, offline_grace 30 s.
Config fixed() {
  Config c;
  c.heartbeat_timeout_floor = std::chrono::milliseconds(kTimeout);
  c.heartbeat_timeout_ceiling = std::chrono::milliseconds(kTimeout);
  c.heartbeat_default_interval = 5s;
  c.offline_grace = std::chrono::milliseconds(kGrace);
  return c;
}

void feed(Engine& e, EventKind kind, DeviceIndex d, std::int64_t at,
          DisconnectReason reason = DisconnectReason::Unknown) {
  Event ev;
  ev.kind = kind;
  ev.device = d;
  ev.at = mono_ms(at);
  ev.reason = reason;
  e.on_events(&ev, 1);
}
void fleet(Engine& e, EventKind kind, std::int64_t at) { feed(e, kind, kNoDevice, at); }

State state_at(Engine& e, DeviceIndex d, std::int64_t at) {
  e.tick(mono_ms(at));
  return e.view(d).state;
}

}  // namespace

TEST_CASE("without overload: silent 15 s -> suspect, 30 s later offline (the baseline)") {
  Engine e(fixed());
  const auto d = e.intern("dev");
  feed(e, EventKind::Heartbeat, d, 0);
  feed(e, EventKind::Heartbeat, d, 5 * kSec);
  CHECK(state_at(e, d, 5 * kSec + kTimeout - 1) == State::Online);
  CHECK(state_at(e, d, 5 * kSec + kTimeout) == State::Suspect);
  CHECK(state_at(e, d, 5 * kSec + kTimeout + kGrace - 1) == State::Suspect);
  CHECK(state_at(e, d, 5 * kSec + kTimeout + kGrace) == State::Offline);
}

TEST_CASE("while overloaded no silence is judged; after it, the timeout counts from its end") {
  Engine e(fixed());
  const auto d = e.intern("dev");
  feed(e, EventKind::Heartbeat, d, 0);
  feed(e, EventKind::Heartbeat, d, 5 * kSec);
  fleet(e, EventKind::OverloadBegan, 10 * kSec);
  CHECK(e.overloaded());
  // Long past the timeout and the grace: still online, nothing decided.
  CHECK(state_at(e, d, 300 * kSec) == State::Online);
  std::vector<Transition> out;
  e.drain(out);
  CHECK(out.size() == 1);  // the first online only
  const std::int64_t end = 300 * kSec;
  fleet(e, EventKind::OverloadEnded, end);
  CHECK_FALSE(e.overloaded());
  CHECK(state_at(e, d, end + kTimeout - 1) == State::Online);
  CHECK(state_at(e, d, end + kTimeout) == State::Suspect);
  CHECK(state_at(e, d, end + kTimeout + kGrace - 1) == State::Suspect);
  CHECK(state_at(e, d, end + kTimeout + kGrace) == State::Offline);
  CHECK(e.view(d).cause == Cause::HeartbeatTimeout);
  CHECK(e.counters().overloads == 1);
}

TEST_CASE("an overload noticed late (a stalled engine) covers the time since the last event") {
  Engine e(fixed());
  const auto d = e.intern("dev");
  feed(e, EventKind::Heartbeat, d, 0);
  e.tick(mono_ms(kTimeout - 1));
  // The engine thread stalled; when it runs again it learns of the stall first. The silence
  // deadline (15 s) and the grace (45 s) passed meanwhile, unobserved: no verdict.
  fleet(e, EventKind::OverloadBegan, 60 * kSec);
  std::vector<Transition> out;
  e.drain(out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].to == State::Online);
  CHECK(e.view(d).state == State::Online);
  fleet(e, EventKind::OverloadEnded, 70 * kSec);
  CHECK(state_at(e, d, 70 * kSec + kTimeout - 1) == State::Online);
  CHECK(state_at(e, d, 70 * kSec + kTimeout) == State::Suspect);
}

TEST_CASE("a heartbeat that arrives after the overload keeps the device online") {
  Engine e(fixed());
  const auto d = e.intern("dev");
  feed(e, EventKind::Heartbeat, d, 0);
  fleet(e, EventKind::OverloadBegan, 1 * kSec);
  CHECK(state_at(e, d, 60 * kSec) == State::Online);
  fleet(e, EventKind::OverloadEnded, 60 * kSec);
  feed(e, EventKind::Heartbeat, d, 60 * kSec + kTimeout - 1);  // the late one, delivered now
  CHECK(state_at(e, d, 60 * kSec + kTimeout) == State::Online);
  CHECK(state_at(e, d, 60 * kSec + 2 * kTimeout - 2) == State::Online);
  CHECK(state_at(e, d, 60 * kSec + 2 * kTimeout - 1) == State::Suspect);
}

TEST_CASE("a device already suspect on silence is not convicted while overloaded; it owes a full "
          "offline_grace after") {
  Engine e(fixed());
  const auto d = e.intern("dev");
  feed(e, EventKind::Heartbeat, d, 0);
  CHECK(state_at(e, d, kTimeout) == State::Suspect);
  fleet(e, EventKind::OverloadBegan, kTimeout + 10 * kSec);
  CHECK(state_at(e, d, kTimeout + kGrace) == State::Suspect);  // would be offline here
  CHECK(state_at(e, d, 200 * kSec) == State::Suspect);
  fleet(e, EventKind::OverloadEnded, 200 * kSec);
  CHECK(state_at(e, d, 200 * kSec + kGrace - 1) == State::Suspect);
  CHECK(state_at(e, d, 200 * kSec + kGrace) == State::Offline);
}

TEST_CASE("a disconnect while overloaded is evidence: offline after offline_grace as usual") {
  Engine e(fixed());
  const auto d = e.intern("dev");
  feed(e, EventKind::Connected, d, 0);
  fleet(e, EventKind::OverloadBegan, 1 * kSec);
  feed(e, EventKind::Disconnected, d, 2 * kSec, DisconnectReason::LastWill);
  CHECK(state_at(e, d, 2 * kSec) == State::Suspect);
  CHECK(state_at(e, d, 2 * kSec + kGrace - 1) == State::Suspect);
  CHECK(state_at(e, d, 2 * kSec + kGrace) == State::Offline);
}

TEST_CASE("OverloadBegan/Ended are idempotent; an end without a begin changes nothing") {
  Engine e(fixed());
  const auto d = e.intern("dev");
  feed(e, EventKind::Heartbeat, d, 0);
  fleet(e, EventKind::OverloadEnded, 1 * kSec);  // not overloaded: ignored, no clock restarted
  CHECK(state_at(e, d, kTimeout) == State::Suspect);
  fleet(e, EventKind::OverloadBegan, 20 * kSec);
  fleet(e, EventKind::OverloadBegan, 21 * kSec);
  CHECK(e.counters().overloads == 1);
  fleet(e, EventKind::OverloadEnded, 22 * kSec);
  fleet(e, EventKind::OverloadEnded, 40 * kSec);  // repeated: does not move the clock again
  CHECK(state_at(e, d, 22 * kSec + kGrace) == State::Offline);
}

TEST_CASE("observer hears the overload begin and end once each") {
  struct Obs : DecisionObserver {
    std::vector<std::pair<bool, std::int64_t>> seen;
    void on_overload(bool o, MonoTime at) override { seen.emplace_back(o, to_ms(at)); }
  } obs;
  Engine e(fixed());
  e.set_observer(&obs);
  fleet(e, EventKind::OverloadBegan, 5);
  fleet(e, EventKind::OverloadBegan, 6);
  fleet(e, EventKind::OverloadEnded, 7);
  e.flush();
  REQUIRE(obs.seen.size() == 2);
  CHECK(obs.seen[0] == std::pair<bool, std::int64_t>{true, 5});
  CHECK(obs.seen[1] == std::pair<bool, std::int64_t>{false, 7});
}
