// Engine behaviour through its public API, with a simulated clock (STYLE.md habits 1-2). Every
// window is checked at T-1, T and T+1 ms.
#include "presence/core/engine.h"

#include <doctest/doctest.h>

#include <algorithm>

#include <string>
#include <vector>

using namespace presence::core;

namespace {

constexpr std::int64_t kSec = 1000;

Event ev(EventKind kind, DeviceIndex device, std::int64_t at_ms, std::uint64_t session = 0,
         DisconnectReason reason = DisconnectReason::Unknown) {
  Event e;
  e.kind = kind;
  e.device = device;
  e.at = mono_ms(at_ms);
  e.session = session;
  e.reason = reason;
  return e;
}
Event conn(DeviceIndex d, std::int64_t at, std::uint64_t session = 0) {
  return ev(EventKind::Connected, d, at, session);
}
Event hb(DeviceIndex d, std::int64_t at, std::uint64_t session = 0) {
  return ev(EventKind::Heartbeat, d, at, session);
}
Event disc(DeviceIndex d, std::int64_t at, std::uint64_t session = 0,
           DisconnectReason reason = DisconnectReason::LastWill) {
  return ev(EventKind::Disconnected, d, at, session, reason);
}
Event fleet(EventKind kind, std::int64_t at) { return ev(kind, kNoDevice, at); }

std::vector<Transition> drain(Engine& engine) {
  std::vector<Transition> out;
  engine.drain(out);
  return out;
}

// Exactly one transition, to `to`, and return it.
Transition one(Engine& engine, State to) {
  auto t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].to == to);
  return t[0];
}

const Config kDefaults{};
const std::int64_t kGrace = kDefaults.offline_grace.count();       // 30 s
const std::int64_t kStable = kDefaults.online_stable_for.count();  // 60 s

}  // namespace

TEST_CASE("intern refuses an empty id, one over kMaxIdBytes and one holding a NUL byte") {
  Engine engine;
  CHECK(engine.intern("") == kNoDevice);
  CHECK(engine.intern(std::string(Engine::kMaxIdBytes + 1, 'x')) == kNoDevice);
  CHECK(engine.intern(std::string(Engine::kMaxIdBytes, 'x')) != kNoDevice);
  // The snapshot's index tokens are 5 bytes starting with NUL (core/snapshot_slicer.h).
  CHECK(engine.intern(std::string("\0\0\0\0\1", 5)) == kNoDevice);
  CHECK(engine.intern(std::string("a\0b", 3)) == kNoDevice);
  CHECK(engine.device_count() == 1);
}

TEST_CASE("connect -> online; disconnect -> suspect; offline exactly at offline_grace") {
  Engine engine;
  const DeviceIndex d = engine.intern("dev-1");
  CHECK(engine.id_of(d) == "dev-1");
  CHECK(engine.find("dev-1") == d);
  CHECK_FALSE(engine.find("dev-2").has_value());
  engine.on_event(conn(d, 1 * kSec, 1));
  auto t = one(engine, State::Online);
  CHECK(t.from == State::Unknown);
  CHECK(t.cause == Cause::Connected);
  engine.on_event(disc(d, 2 * kSec, 1, DisconnectReason::LastWill));
  t = one(engine, State::Suspect);
  CHECK(t.cause == Cause::Disconnected);
  CHECK(t.disconnect_reason == DisconnectReason::LastWill);
  engine.tick(mono_ms(2 * kSec + kGrace - 1));  // T-1
  CHECK(drain(engine).empty());
  CHECK(engine.view(d).state == State::Suspect);
  engine.tick(mono_ms(2 * kSec + kGrace));  // T
  t = one(engine, State::Offline);
  CHECK(t.from == State::Suspect);
  CHECK(t.cause == Cause::OfflineGrace);
  CHECK(t.disconnect_reason == DisconnectReason::LastWill);
  CHECK(to_ms(t.at) == 2 * kSec + kGrace);
  engine.tick(mono_ms(2 * kSec + kGrace + 1));  // T+1
  CHECK(drain(engine).empty());
  const auto counts = engine.counts();
  CHECK(counts[static_cast<std::size_t>(State::Offline)] == 1);
  CHECK(engine.view(d).since == mono_ms(2 * kSec + kGrace));
}

TEST_CASE("a reconnect inside offline_grace is not an offline (debounce)") {
  for (std::int64_t back : {kGrace - 1, kGrace, kGrace + 1}) {
    CAPTURE(back);
    Engine engine;
    const DeviceIndex d = engine.intern("d");
    engine.on_event(conn(d, 0, 1));
    engine.on_event(disc(d, 10 * kSec, 1));
    drain(engine);
    engine.on_event(conn(d, 10 * kSec + back, 2));
    auto t = drain(engine);
    if (back < kGrace) {
      REQUIRE(t.size() == 1);
      CHECK(t[0].from == State::Suspect);
      CHECK(t[0].to == State::Online);
      CHECK(t[0].cause == Cause::Connected);
    } else {
      // The grace ran out at T, before the reconnect at T (timers fire first): offline, and the
      // reconnect now has to be stable (hysteresis).
      REQUIRE(t.size() == 1);
      CHECK(t[0].to == State::Offline);
      CHECK(engine.view(d).state == State::Offline);
    }
  }
}

TEST_CASE("hysteresis: after offline, online only after online_stable_for") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0, 1));
  engine.on_event(disc(d, 1 * kSec, 1));
  engine.tick(mono_ms(1 * kSec + kGrace));
  drain(engine);
  REQUIRE(engine.view(d).state == State::Offline);
  const std::int64_t back = 100 * kSec;
  engine.on_event(conn(d, back, 2));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(back + kStable - 1));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(back + kStable));
  auto t = one(engine, State::Online);
  CHECK(t.from == State::Offline);
  CHECK(t.cause == Cause::StableOnline);
  engine.tick(mono_ms(back + kStable + 1));
  CHECK(drain(engine).empty());

}

TEST_CASE("hysteresis: a departure inside online_stable_for restarts the wait") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0, 1));
  engine.on_event(disc(d, 1 * kSec, 1));
  engine.tick(mono_ms(1 * kSec + kGrace));
  drain(engine);
  engine.on_event(conn(d, 100 * kSec, 2));
  engine.on_event(disc(d, 100 * kSec + kStable - 1, 2));
  engine.on_event(conn(d, 100 * kSec + kStable, 3));
  engine.tick(mono_ms(100 * kSec + kStable + kStable - 1));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(100 * kSec + 2 * kStable));
  CHECK(one(engine, State::Online).cause == Cause::StableOnline);
}

TEST_CASE("adaptive heartbeat timeout: 10 s and 5 min devices are both judged by their own interval") {
  const Config c;
  SUBCASE("fast device: timeout 3 x 10 s") {
    Engine e2(c);
    const DeviceIndex f = e2.intern("fast");
    for (int i = 0; i <= 6; ++i) e2.on_event(hb(f, i * 10 * kSec));
    drain(e2);
    const std::int64_t last = 60 * kSec;
    CHECK(e2.view(f).heartbeat_timeout == std::chrono::seconds(30));
    e2.tick(mono_ms(last + 30 * kSec - 1));
    CHECK(drain(e2).empty());
    e2.tick(mono_ms(last + 30 * kSec));
    auto t = one(e2, State::Suspect);
    CHECK(t.cause == Cause::HeartbeatTimeout);
    CHECK(to_ms(t.at) == last + 30 * kSec);
    e2.tick(mono_ms(last + 30 * kSec + 1));
    CHECK(drain(e2).empty());
    e2.tick(mono_ms(last + 30 * kSec + kGrace - 1));
    CHECK(drain(e2).empty());
    e2.tick(mono_ms(last + 30 * kSec + kGrace));
    t = one(e2, State::Offline);
    CHECK(t.cause == Cause::HeartbeatTimeout);
  }
  SUBCASE("slow device: timeout 3 x 5 min, never suspected at 5 min") {
    Engine e2(c);
    const DeviceIndex s = e2.intern("slow");
    for (int i = 0; i <= 6; ++i) e2.on_event(hb(s, i * 300 * kSec));
    auto t = drain(e2);
    REQUIRE(t.size() == 1);  // Unknown -> Online only
    CHECK(t[0].cause == Cause::Heartbeat);
    CHECK(e2.view(s).heartbeat_mean == std::chrono::seconds(300));
    CHECK(e2.view(s).heartbeat_timeout == std::chrono::seconds(900));
    const std::int64_t last = 1800 * kSec;
    e2.tick(mono_ms(last + 900 * kSec - 1));
    CHECK(drain(e2).empty());
    e2.tick(mono_ms(last + 900 * kSec));
    CHECK(one(e2, State::Suspect).cause == Cause::HeartbeatTimeout);
  }
  SUBCASE("a heartbeat inside the timeout keeps the device online") {
    Engine e2(c);
    const DeviceIndex f = e2.intern("fast");
    for (int i = 0; i <= 6; ++i) e2.on_event(hb(f, i * 10 * kSec));
    e2.on_event(hb(f, 60 * kSec + 30 * kSec - 1));
    e2.tick(mono_ms(60 * kSec + 30 * kSec));
    drain(e2);
    CHECK(e2.view(f).state == State::Online);
  }
}

TEST_CASE("heartbeat timeout floor, ceiling and young devices") {
  Config c;
  Engine engine(c);
  const DeviceIndex d = engine.intern("d");
  engine.on_event(hb(d, 0));
  // No interval seen yet: the ceiling.
  CHECK(engine.view(d).heartbeat_timeout == c.heartbeat_timeout_ceiling);
  engine.on_event(hb(d, 1 * kSec));
  // One sample (1 s) < heartbeat_min_samples: the default interval stands in (3 x 60 s).
  CHECK(engine.view(d).heartbeat_timeout == std::chrono::seconds(180));
  engine.on_event(hb(d, 2 * kSec));
  engine.on_event(hb(d, 3 * kSec));
  // Mean 1 s: 3 s is below the floor.
  CHECK(engine.view(d).heartbeat_timeout == c.heartbeat_timeout_floor);
  engine.tick(mono_ms(3 * kSec + c.heartbeat_timeout_floor.count() - 1));
  drain(engine);
  CHECK(engine.view(d).state == State::Online);
  engine.tick(mono_ms(3 * kSec + c.heartbeat_timeout_floor.count()));
  CHECK(one(engine, State::Suspect).cause == Cause::HeartbeatTimeout);
}

TEST_CASE("devices that never heartbeat are judged by sessions only") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0, 1));
  engine.tick(mono_ms(24LL * 3600 * kSec));
  auto t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(engine.view(d).state == State::Online);
  CHECK(engine.view(d).heartbeat_timeout == Duration{0});
}

TEST_CASE("session takeover: the old connection's disconnect after the new connect is ignored") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0, 10));
  engine.on_event(conn(d, 5 * kSec, 11));  // new connection, same client id
  SUBCASE("reason Takeover") {
    engine.on_event(disc(d, 5 * kSec + 3, 10, DisconnectReason::Takeover));
    CHECK(engine.counters().takeover_events == 1);
  }
  SUBCASE("reason unknown, but an older session (Mosquitto 2.0: reason is always -1)") {
    engine.on_event(disc(d, 5 * kSec + 3, 10, DisconnectReason::Unknown));
    CHECK(engine.counters().stale_events == 1);
  }
  SUBCASE("Takeover even without session ids never counts as a departure") {
    engine.on_event(disc(d, 5 * kSec + 3, 0, DisconnectReason::Takeover));
  }
  engine.tick(mono_ms(1000 * kSec));
  auto t = drain(engine);
  REQUIRE(t.size() == 1);  // Unknown -> Online, nothing else
  CHECK(engine.view(d).state == State::Online);
  CHECK(engine.view(d).session == 11);
}

// Ingest's bulk heartbeat reader reads heartbeats on a second connection: a dead device's last
// heartbeat can arrive after its will (alerting_fleet_test caught one straggler brought back this
// way, declared down again only on heartbeat silence and left out of its incident's page).
TEST_CASE("an unordered heartbeat within reorder_window of a will does not bring the device back") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  const std::int64_t w = kDefaults.reorder_window.count();  // 2 s
  REQUIRE(w == 2 * kSec);
  engine.on_event(conn(d, 0));
  engine.on_event(hb(d, 1 * kSec));
  CHECK(one(engine, State::Online).cause == Cause::Connected);
  const std::int64_t will = 10 * kSec;
  engine.on_event(disc(d, will));
  CHECK(one(engine, State::Suspect).cause == Cause::Disconnected);
  auto unordered = [&](std::int64_t at) {
    Event e = hb(d, at);
    e.unordered = true;
    return e;
  };
  SUBCASE("T-1: dropped and counted; the device still goes offline at offline_grace") {
    engine.on_event(unordered(will + w - 1));
    CHECK(drain(engine).empty());
    CHECK(engine.counters().reordered_heartbeats == 1);
    CHECK(engine.view(d).state == State::Suspect);
    engine.tick(mono_ms(will + kGrace));
    CHECK(one(engine, State::Offline).cause == Cause::OfflineGrace);
  }
  SUBCASE("an unordered heartbeat stamped before the will (read first, handled after)") {
    engine.on_event(unordered(will - 5));
    CHECK(drain(engine).empty());
    CHECK(engine.counters().reordered_heartbeats == 1);
  }
  SUBCASE("T: the device is back") {
    engine.on_event(unordered(will + w));
    CHECK(one(engine, State::Online).cause == Cause::Heartbeat);
    CHECK(engine.counters().reordered_heartbeats == 0);
  }
  SUBCASE("T+1: the device is back") {
    engine.on_event(unordered(will + w + 1));
    CHECK(one(engine, State::Online).cause == Cause::Heartbeat);
  }
  SUBCASE("a heartbeat on the will's own connection is in order: taken at once") {
    engine.on_event(hb(d, will + 1));
    CHECK(one(engine, State::Online).cause == Cause::Heartbeat);
    CHECK(engine.counters().reordered_heartbeats == 0);
  }
  SUBCASE("after a reconnect (a birth) the new connection's heartbeats count") {
    engine.on_event(conn(d, will + 1));
    CHECK(one(engine, State::Online).cause == Cause::Connected);
    engine.on_event(unordered(will + 2));
    CHECK(drain(engine).empty());
    CHECK(engine.counters().reordered_heartbeats == 0);
    CHECK(engine.view(d).state == State::Online);
  }
}

TEST_CASE("reorder_window 0 turns the rule off; silence is not a reported departure") {
  SUBCASE("window 0") {
    Config c;
    c.reorder_window = Duration{0};
    Engine engine(c);
    const DeviceIndex d = engine.intern("d");
    engine.on_event(conn(d, 0));
    drain(engine);
    engine.on_event(disc(d, 10 * kSec));
    CHECK(one(engine, State::Suspect).cause == Cause::Disconnected);
    Event e = hb(d, 10 * kSec + 1);
    e.unordered = true;
    engine.on_event(e);
    CHECK(one(engine, State::Online).cause == Cause::Heartbeat);
  }
  SUBCASE("a device down on heartbeat silence is back with its next heartbeat, from any connection") {
    Engine engine;
    const DeviceIndex d = engine.intern("d");
    for (std::int64_t t = 0; t <= 4 * kSec; t += kSec) engine.on_event(hb(d, t));
    drain(engine);
    const std::int64_t silent = 4 * kSec + engine.view(d).heartbeat_timeout.count();
    engine.tick(mono_ms(silent));
    CHECK(one(engine, State::Suspect).cause == Cause::HeartbeatTimeout);
    Event e = hb(d, silent + 1);
    e.unordered = true;
    engine.on_event(e);
    CHECK(one(engine, State::Online).cause == Cause::Heartbeat);
    CHECK(engine.counters().reordered_heartbeats == 0);
  }
}

TEST_CASE("duplicates: a repeated connect or disconnect yields no second transition") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0, 7));
  engine.on_event(conn(d, 1, 7));
  CHECK(drain(engine).size() == 1);
  engine.on_event(disc(d, 10, 7));
  engine.on_event(disc(d, 11, 7));
  engine.on_event(disc(d, 12, 0));  // by arrival, also a duplicate: already down, session ended
  CHECK(drain(engine).size() == 1);
  CHECK(engine.counters().duplicate_events == 3);
  engine.tick(mono_ms(10 + kGrace));
  CHECK(one(engine, State::Offline).cause == Cause::OfflineGrace);
}

TEST_CASE("a disconnect that overtakes its own connect: the late connect is stale") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0, 1));
  engine.on_event(disc(d, 1 * kSec, 2));  // session 2's disconnect arrives first
  engine.on_event(conn(d, 1 * kSec + 5, 2));  // its connect, late: the session already ended
  CHECK(engine.counters().stale_events == 1);
  engine.tick(mono_ms(1 * kSec + kGrace));
  auto t = drain(engine);
  REQUIRE(t.size() == 3);
  CHECK(t[1].to == State::Suspect);
  CHECK(t[2].to == State::Offline);
}

TEST_CASE("a stale disconnect never marks a live device offline; a newer one does") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0, 5));
  engine.on_event(disc(d, 1 * kSec, 4));
  engine.on_event(disc(d, 2 * kSec, 3));
  engine.tick(mono_ms(100 * kSec));
  CHECK(drain(engine).size() == 1);
  engine.on_event(disc(d, 101 * kSec, 5));
  CHECK(one(engine, State::Suspect).cause == Cause::Disconnected);
}

TEST_CASE("without session ids events are ordered by arrival") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0));
  engine.on_event(disc(d, 1 * kSec));
  engine.on_event(conn(d, 2 * kSec));
  auto t = drain(engine);
  REQUIRE(t.size() == 3);
  CHECK(t[2].to == State::Online);
}

TEST_CASE("an event older than the engine's time is processed at the current time") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.tick(mono_ms(50 * kSec));
  engine.on_event(conn(d, 10 * kSec, 1));
  auto t = one(engine, State::Online);
  CHECK(to_ms(t.at) == 50 * kSec);
  CHECK(engine.now() == mono_ms(50 * kSec));
}

TEST_CASE("broker restart: session ids restart, old ids do not make new sessions stale") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0, 900));
  engine.on_event(fleet(EventKind::BrokerRestarted, 10 * kSec));
  engine.on_event(conn(d, 11 * kSec, 3));
  engine.on_event(disc(d, 12 * kSec, 3));
  auto t = drain(engine);
  REQUIRE(t.size() == 2);
  CHECK(t[1].to == State::Suspect);
}

TEST_CASE("flapping: one decision for the episode, ends after quiet time into a settled state") {
  // Default flap config: 21 observations (20 transitions), window 10 min -> a quiet shift every
  // 30 s; start at >= 50 %, stop at <= 25 %. Nine newest changes score 51.5 %.
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0));  // first observation: not a change
  std::int64_t t = 0;
  std::vector<Transition> all;
  for (int change = 1; change <= 10; ++change) {
    t = change * kSec;
    engine.on_event(change % 2 ? disc(d, t) : conn(d, t));
    auto got = drain(engine);
    if (change < 9) {
      CHECK(engine.view(d).state != State::Flapping);
    } else if (change == 9) {
      REQUIRE(!got.empty());
      CHECK(got.back().to == State::Flapping);
      CHECK(got.back().cause == Cause::FlapStart);
    } else {
      CHECK(got.empty());  // bounces while flapping are not decisions
    }
  }
  // Last observation (a connect) at L = 10 s with ten changes in history. Quiet shifts every
  // 30 s: after 13 the share is 29.0 %, after 14 it is 24.5 % <= 25 %.
  const std::int64_t stop = t + 14 * 30 * kSec;
  engine.tick(mono_ms(stop - 1));
  CHECK(drain(engine).empty());
  CHECK(engine.view(d).state == State::Flapping);
  engine.tick(mono_ms(stop));
  auto got = one(engine, State::Online);
  CHECK(got.from == State::Flapping);
  CHECK(got.cause == Cause::FlapStop);
  engine.tick(mono_ms(stop + 1));
  CHECK(drain(engine).empty());
}

TEST_CASE("flapping that ends while down becomes offline") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0));
  for (int change = 1; change <= 9; ++change) {
    engine.on_event(change % 2 ? disc(d, change * kSec) : conn(d, change * kSec));
  }
  drain(engine);
  REQUIRE(engine.view(d).state == State::Flapping);
  // Nine changes, the last a disconnect at 9 s: after 13 quiet shifts 29.0 %, after 14 24.5 %;
  // down far longer than offline_grace by then.
  const std::int64_t stop = 9 * kSec + 14 * 30 * kSec;
  engine.tick(mono_ms(stop - 1));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(stop));
  auto got = one(engine, State::Offline);
  CHECK(got.cause == Cause::FlapStop);
  engine.tick(mono_ms(stop + 1));
  CHECK(drain(engine).empty());
}

TEST_CASE("a flap ends only into a settled state: up for online_stable_for") {
  Config c;
  c.online_stable_for = std::chrono::seconds(90);
  Engine engine(c);
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0));
  for (int change = 1; change <= 9; ++change) {
    engine.on_event(change % 2 ? disc(d, change * kSec) : conn(d, change * kSec));
  }
  drain(engine);
  // Back at 428 s, just before the share would have fallen: the connect is a change of weight
  // 1.25 on top of the six old changes left (30.8 %). Two quiet shifts later (488 s) the share is
  // 21.8 % <= 25 %, but the device has only been up 60 s: the flap ends at 428 + 90 s.
  engine.on_event(conn(d, 428 * kSec));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(488 * kSec));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(518 * kSec - 1));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(518 * kSec));
  auto got = one(engine, State::Online);
  CHECK(got.cause == Cause::FlapStop);
}

TEST_CASE("rare disconnects spread out beyond the flap window never add up to a flap") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 0, 1));
  std::uint64_t s = 1;
  for (int i = 1; i <= 200; ++i) {
    const std::int64_t t = i * 5 * 60 * kSec;  // every 5 minutes a quick bounce
    engine.on_event(disc(d, t, s));
    engine.on_event(conn(d, t + 2 * kSec, ++s));
  }
  std::vector<Transition> all;
  engine.drain(all);
  for (const auto& t : all) CHECK(t.to != State::Flapping);
}

TEST_CASE("blind: nobody is declared offline on silence presenced could not observe") {
  Engine engine;
  const DeviceIndex hbdev = engine.intern("hb");
  const DeviceIndex sess = engine.intern("sess");
  for (int i = 0; i <= 5; ++i) engine.on_event(hb(hbdev, i * 10 * kSec));
  engine.on_event(conn(sess, 0, 1));
  engine.on_event(disc(sess, 49 * kSec, 1));  // suspect just before the blind spot
  drain(engine);
  engine.on_event(fleet(EventKind::IngestLost, 50 * kSec));
  CHECK(engine.blind());
  engine.tick(mono_ms(3600 * kSec));
  CHECK(drain(engine).empty());
  CHECK(engine.view(hbdev).state == State::Online);
  CHECK(engine.view(sess).state == State::Suspect);
  // Back: restart grace; nobody shows evidence; grace ends at restart_grace_min (settle is
  // shorter) and both go offline for lack of fresh evidence.
  const std::int64_t r = 3600 * kSec;
  engine.on_event(fleet(EventKind::IngestRestored, r));
  CHECK_FALSE(engine.blind());
  CHECK(engine.in_restart_grace());
  const std::int64_t end = r + kDefaults.restart_grace_min.count();
  engine.tick(mono_ms(end - 1));
  CHECK(drain(engine).empty());
  CHECK(engine.in_restart_grace());
  engine.tick(mono_ms(end));
  auto t = drain(engine);
  REQUIRE(t.size() == 2);
  for (const auto& x : t) {
    CHECK(x.to == State::Offline);
    CHECK(x.cause == Cause::RestartGrace);
    CHECK(to_ms(x.at) == end);
  }
  CHECK_FALSE(engine.in_restart_grace());
}

TEST_CASE("restart grace: devices with fresh evidence keep their state") {
  Engine engine;
  const DeviceIndex a = engine.intern("a");
  const DeviceIndex b = engine.intern("b");
  engine.on_event(conn(a, 0, 1));
  engine.on_event(conn(b, 0, 1));
  engine.on_event(fleet(EventKind::IngestLost, 10 * kSec));
  engine.on_event(fleet(EventKind::IngestRestored, 20 * kSec));
  drain(engine);
  engine.on_event(conn(a, 21 * kSec, 2));
  engine.tick(mono_ms(20 * kSec + kDefaults.restart_grace_min.count()));
  auto t = one(engine, State::Offline);
  CHECK(t.device == b);
  CHECK(engine.view(a).state == State::Online);
}

TEST_CASE("restart grace ends when the returning share stopped growing for restart_grace_settle") {
  const Config c;
  Engine engine(c);
  std::vector<DeviceIndex> ds;
  for (int i = 0; i < 5; ++i) {
    ds.push_back(engine.intern("d" + std::to_string(i)));
    engine.on_event(conn(ds.back(), 0, 1));
  }
  drain(engine);
  const std::int64_t r = 100 * kSec;
  engine.on_event(fleet(EventKind::IngestLost, 50 * kSec));
  engine.on_event(fleet(EventKind::IngestRestored, r));
  // Returns at +10 s, +25 s, +38 s (past restart_grace_min = 30 s); the last growth at +38 s
  // ends the grace at +38 + 15 = +53 s.
  engine.on_event(conn(ds[0], r + 10 * kSec, 2));
  engine.on_event(conn(ds[1], r + 25 * kSec, 2));
  engine.on_event(conn(ds[2], r + 38 * kSec, 2));
  engine.on_event(conn(ds[2], r + 40 * kSec, 3));  // same device again: not growth
  const std::int64_t end = r + 38 * kSec + c.restart_grace_settle.count();
  CHECK(engine.restart_grace().ends == mono_ms(end));
  CHECK(engine.restart_grace().known == 5);
  CHECK(engine.restart_grace().returned == 3);
  engine.tick(mono_ms(end - 1));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(end));
  auto t = drain(engine);
  REQUIRE(t.size() == 2);
  CHECK(t[0].cause == Cause::RestartGrace);
  CHECK_FALSE(engine.in_restart_grace());
}

TEST_CASE("evidence at the grace end itself is too late; at T-1 it counts") {
  for (std::int64_t delta : {-1, 0}) {
    CAPTURE(delta);
    Engine engine;
    const DeviceIndex a = engine.intern("a");
    engine.on_event(conn(a, 0, 1));
    engine.on_event(fleet(EventKind::IngestRestored, 10 * kSec));
    drain(engine);
    // Without growth the grace ends at restart_grace_min. Evidence at T-1 is growth and moves the
    // end by restart_grace_settle; evidence at T comes after the sweep.
    const std::int64_t end = 10 * kSec + kDefaults.restart_grace_min.count();
    engine.on_event(conn(a, end + delta, 2));
    engine.tick(mono_ms(end + 3600 * kSec));
    auto t = drain(engine);
    if (delta < 0) {
      CHECK(t.empty());
    } else {
      REQUIRE(t.size() == 2);
      CHECK(t[0].cause == Cause::RestartGrace);
      // The connect then needs online_stable_for (hysteresis) and gets it.
      CHECK(t[1].cause == Cause::StableOnline);
      CHECK(to_ms(t[1].at) == end + kStable);
    }
  }
}

TEST_CASE("restart grace is bounded by restart_grace_max") {
  const Config c;
  Engine engine(c);
  std::vector<DeviceIndex> ds;
  for (int i = 0; i < 100; ++i) ds.push_back(engine.intern("d" + std::to_string(i)));
  const DeviceIndex silent = engine.intern("silent");
  engine.on_event(conn(silent, 0, 1));
  engine.on_event(fleet(EventKind::IngestRestored, 0));
  // A new device every 10 s: the share keeps growing, the grace only ends at the max (600 s).
  for (int i = 0; i < 59; ++i) {
    engine.on_event(conn(ds[static_cast<std::size_t>(i)], (i + 1) * 10 * kSec, 1));
  }
  const std::int64_t max = c.restart_grace_max.count();
  engine.tick(mono_ms(max - 1));
  CHECK(engine.in_restart_grace());
  CHECK(engine.view(silent).state == State::Online);
  drain(engine);
  engine.tick(mono_ms(max));
  auto t = one(engine, State::Offline);
  CHECK(t.device == silent);
  CHECK(t.cause == Cause::RestartGrace);
  CHECK_FALSE(engine.in_restart_grace());
  engine.tick(mono_ms(max + 1));
  CHECK(drain(engine).empty());
}

TEST_CASE("a disconnect during restart grace follows offline_grace after the grace ends") {
  Engine engine;
  const DeviceIndex a = engine.intern("a");
  const DeviceIndex b = engine.intern("b");
  engine.on_event(conn(a, 0, 1));
  engine.on_event(conn(b, 0, 1));
  engine.on_event(fleet(EventKind::IngestRestored, 1000 * kSec));
  drain(engine);
  SUBCASE("offline_grace runs out after the restart grace: offline at disconnect + offline_grace") {
    // a's disconnect at +10 s is its fresh evidence; grace ends at +30 s (min); offline at +40 s.
    engine.on_event(disc(a, 1010 * kSec, 1));
    CHECK(one(engine, State::Suspect).device == a);
    engine.tick(mono_ms(1030 * kSec));
    CHECK(one(engine, State::Offline).device == b);  // no evidence: restart grace
    engine.tick(mono_ms(1040 * kSec - 1));
    CHECK(drain(engine).empty());
    engine.tick(mono_ms(1040 * kSec));
    auto t = one(engine, State::Offline);
    CHECK(t.device == a);
    CHECK(t.cause == Cause::OfflineGrace);
  }
  SUBCASE("offline_grace ran out inside the restart grace: offline when the grace ends") {
    engine.on_event(disc(a, 1001 * kSec, 1));
    drain(engine);
    engine.on_event(conn(b, 1020 * kSec, 2));  // growth: grace ends at 1035 s
    engine.tick(mono_ms(1035 * kSec - 1));
    CHECK(drain(engine).empty());
    engine.tick(mono_ms(1035 * kSec));
    auto t = one(engine, State::Offline);
    CHECK(t.device == a);
    CHECK(t.cause == Cause::OfflineGrace);
  }
}

TEST_CASE("after a broker restart a retained 'online' replay is not proof of life") {
  Engine engine;
  const DeviceIndex gone = engine.intern("gone");
  const DeviceIndex back = engine.intern("back");
  engine.on_event(conn(gone, 0, 500));
  engine.on_event(conn(back, 0, 501));
  drain(engine);
  engine.on_event(fleet(EventKind::IngestLost, 10 * kSec));
  engine.on_event(fleet(EventKind::IngestRestored, 20 * kSec));
  engine.on_event(fleet(EventKind::BrokerRestarted, 20 * kSec));
  Event replay = conn(gone, 21 * kSec);
  replay.retained = true;
  engine.on_event(replay);
  CHECK(engine.counters().retained_events == 1);
  engine.on_event(conn(back, 22 * kSec, 1));  // new boot, small session id: fresh
  engine.tick(mono_ms(20 * kSec + 3600 * kSec));
  auto t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].device == gone);
  CHECK(t[0].cause == Cause::RestartGrace);
  CHECK(engine.view(back).state == State::Online);
}

TEST_CASE("a retained status seeds a device never seen, as Resync") {
  Engine engine;
  const DeviceIndex a = engine.intern("a");
  const DeviceIndex b = engine.intern("b");
  Event on = conn(a, 5);
  on.retained = true;
  Event off = disc(b, 5);
  off.retained = true;
  engine.on_event(on);
  engine.on_event(off);
  auto t = drain(engine);
  REQUIRE(t.size() == 2);
  CHECK(t[0].to == State::Online);
  CHECK(t[0].cause == Cause::Resync);
  CHECK(t[1].to == State::Offline);
  CHECK(t[1].cause == Cause::Resync);
}

TEST_CASE("snapshot and restore: restored state needs fresh evidence (restart grace)") {
  Engine first;
  const DeviceIndex a = first.intern("a");
  const DeviceIndex b = first.intern("b");
  const DeviceIndex c = first.intern("c");
  first.set_label(a, "site", "berlin");
  first.set_label(a, "fw", "1.2");
  first.set_label(b, "site", "berlin");
  first.on_event(conn(a, 0, 1));
  first.on_event(conn(b, 0, 1));
  first.on_event(conn(c, 0, 1));
  first.on_event(disc(c, 1 * kSec, 1));
  first.tick(mono_ms(100 * kSec));
  const auto snap = first.snapshot();
  REQUIRE(snap.size() == 3);
  CHECK(snap[0].labels == std::vector<Label>{{"fw", "1.2"}, {"site", "berlin"}});
  CHECK(snap[2].state == State::Offline);

  Engine second;
  second.restore(snap, mono_ms(5000 * kSec));
  CHECK(second.in_restart_grace());
  CHECK(drain(second).empty());
  CHECK(second.view(*second.find("a")).state == State::Online);
  CHECK(second.labels(*second.find("b")) == std::vector<Label>{{"site", "berlin"}});
  second.on_event(hb(*second.find("a"), 5001 * kSec));
  second.tick(mono_ms(6000 * kSec));
  auto t = drain(second);
  REQUIRE(t.size() == 1);  // b: no evidence; c was offline already: no transition
  CHECK(second.id_of(t[0].device) == "b");
  CHECK(t[0].cause == Cause::RestartGrace);
}

TEST_CASE("labels: intern, replace, remove") {
  Engine engine;
  const DeviceIndex a = engine.intern("a");
  engine.set_label(a, "site", "x");
  engine.set_label(a, "site", "y");
  CHECK(engine.labels(a) == std::vector<Label>{{"site", "y"}});
  engine.set_label(a, "site", "");
  CHECK(engine.labels(a).empty());
}

TEST_CASE("bad input: empty and huge ids, unknown device indices") {
  Engine engine;
  CHECK(engine.intern("") == kNoDevice);
  CHECK(engine.intern(std::string(Engine::kMaxIdBytes + 1, 'x')) == kNoDevice);
  CHECK(engine.intern(std::string(Engine::kMaxIdBytes, 'x')) != kNoDevice);
  engine.on_event(conn(kNoDevice, 1));
  engine.on_event(conn(12345, 1));
  CHECK(engine.counters().invalid_events == 2);
  CHECK(drain(engine).empty());
  CHECK(engine.view(999).id.empty());
}

TEST_CASE("on_events (batched, prefetching) decides exactly like on_event") {
  std::vector<Event> events;
  for (int i = 0; i < 200; ++i) {
    const auto d = static_cast<DeviceIndex>(i % 7);
    const std::int64_t t = i * 700;
    if (i % 5 == 0) events.push_back(disc(d, t, static_cast<std::uint64_t>(i)));
    else if (i % 5 == 1) events.push_back(conn(d, t, static_cast<std::uint64_t>(i)));
    else events.push_back(hb(d, t));
  }
  events.push_back(conn(999, 1));  // invalid index inside a batch
  Engine a, b;
  for (int i = 0; i < 7; ++i) {
    a.intern("d" + std::to_string(i));
    b.intern("d" + std::to_string(i));
  }
  for (const auto& e : events) a.on_event(e);
  b.on_events(events.data(), events.size());
  a.tick(mono_ms(1000 * kSec));
  b.tick(mono_ms(1000 * kSec));
  const auto ta = drain(a);
  const auto tb = drain(b);
  REQUIRE(ta.size() == tb.size());
  CHECK(ta.size() > 7);
  for (std::size_t i = 0; i < ta.size(); ++i) {
    CHECK(ta[i].device == tb[i].device);
    CHECK(ta[i].to == tb[i].to);
    CHECK(ta[i].at == tb[i].at);
  }
  CHECK(b.counters().invalid_events == 1);
}

TEST_CASE("config_error names the offending key") {
  CHECK(config_error(Config{}).empty());
  Config c;
  c.offline_grace = Duration{0};
  CHECK(config_error(c).find("offline_grace") != std::string::npos);
  c = Config{};
  c.flap_low = 0.6;
  CHECK(config_error(c).find("flap_low") != std::string::npos);
  c = Config{};
  c.heartbeat_timeout_ceiling = std::chrono::seconds(1);
  CHECK(config_error(c).find("heartbeat_timeout_ceiling") != std::string::npos);
  c = Config{};
  c.restart_grace_max = std::chrono::seconds(1);
  CHECK(config_error(c).find("restart_grace_max") != std::string::npos);
  c = Config{};
  c.flap_history = 33;
  CHECK(config_error(c).find("flap_history") != std::string::npos);
}

// The one set of rules (issue 12: the YAML loader asks config_problems instead of keeping a copy):
// every problem at once, each at its key, a relation naming the other key it involves, and the
// caller's prefix in a reason that names another key.
TEST_CASE("config_problems: every problem, each at its key, relations name the other key") {
  CHECK(config_problems(Config{}).empty());
  Config c;
  c.offline_grace = Duration{0};
  c.flap_low = 0.5;  // == flap_high
  c.heartbeat_min_samples = 0;
  const auto problems = config_problems(c, "presence.");
  REQUIRE(problems.size() == 3);
  CHECK(problems[0].key == "offline_grace");
  CHECK(problems[0].reason == "must be greater than 0");
  CHECK(problems[0].other.empty());
  CHECK(problems[1].key == "heartbeat_min_samples");
  CHECK(problems[1].reason == "must be at least 1");
  CHECK(problems[2].key == "flap_low");
  CHECK(problems[2].reason == "must be less than presence.flap_high (0.5)");
  CHECK(problems[2].other == "flap_high");
  CHECK(config_error(c) == "offline_grace: must be greater than 0");
}

TEST_CASE("config_problems: the bounds at both ends (T-1, T, T+1)") {
  auto keys = [](const Config& c) {
    std::vector<std::string> out;
    for (const auto& p : config_problems(c)) out.push_back(p.key);
    return out;
  };
  using V = std::vector<std::string>;
  Config c;
  c.heartbeat_timeout_ceiling = Duration{0xFFFFFFFFLL};  // the timer wheel's 32 bits
  CHECK(keys(c).empty());
  c.heartbeat_timeout_ceiling = Duration{0xFFFFFFFFLL + 1};
  CHECK(keys(c) == V{"heartbeat_timeout_ceiling"});
  c = Config{};
  c.max_label_keys = 4096;
  CHECK(keys(c).empty());
  c.max_label_keys = 4097;
  CHECK(keys(c) == V{"max_label_keys"});
  c = Config{};
  c.forget_unconfirmed_after = c.offline_grace - Duration{1};
  CHECK(keys(c) == V{"forget_unconfirmed_after"});
  c.forget_unconfirmed_after = c.offline_grace;
  CHECK(keys(c).empty());
  c.forget_unconfirmed_after = Duration{0};  // never
  CHECK(keys(c).empty());
  c = Config{};
  c.forget_after = std::chrono::hours(24 * 3650);
  CHECK(keys(c).empty());
  c.forget_after += Duration{1};
  CHECK(keys(c) == V{"forget_after"});
  // Zero restart grace or zero online_stable_for is refused (the loader always refused it;
  // presence-replay now does too).
  c = Config{};
  c.online_stable_for = Duration{0};
  c.restart_grace_min = Duration{0};
  CHECK(keys(c) == V{"online_stable_for", "restart_grace_min"});
}

namespace {
struct Recorder : DecisionObserver {
  std::vector<std::string> log;
  void on_transition(const Transition& t) override {
    log.push_back(std::string("transition ") + to_string(t.to));
  }
  void on_connect(DeviceIndex, MonoTime at) override {
    log.push_back("connect " + std::to_string(to_ms(at)));
  }
  void on_label(DeviceIndex, std::string_view k, std::string_view v) override {
    log.push_back("label " + std::string(k) + "=" + std::string(v));
  }
  void on_blind(bool b, MonoTime) override { log.push_back(b ? "blind" : "sighted"); }
  void on_restart_grace(bool a, MonoTime) override { log.push_back(a ? "grace" : "grace end"); }
  void on_tick(MonoTime now) override { log.push_back("tick " + std::to_string(to_ms(now))); }
  void drain_alerts(std::vector<AlertIntent>& out) override {
    AlertIntent a;
    a.dedup_key = "k";
    out.push_back(a);
  }
};
}  // namespace

TEST_CASE("on_connect is a (re)connection: broker-ext's connect and the birth after it are one") {
  Engine engine;
  Recorder r;
  engine.set_observer(&r);
  const DeviceIndex d = engine.intern("d");
  auto connects = [&] {
    return std::count_if(r.log.begin(), r.log.end(), [](const std::string& s) { return s.rfind("connect", 0) == 0; });
  };
  Event bx = conn(d, 10, 1);
  bx.source = Source::BrokerExt;
  engine.on_event(bx);
  Event birth = conn(d, 11);  // the device's retained "online" right after connecting
  birth.source = Source::Status;
  engine.on_event(birth);
  engine.flush();
  CHECK(connects() == 1);
  engine.on_event(disc(d, 20, 1));
  Event again = conn(d, 30, 2);
  again.source = Source::BrokerExt;
  engine.on_event(again);
  engine.flush();
  CHECK(connects() == 2);  // after a disconnect: a reconnect
}

TEST_CASE("the decision observer sees every decision in order (fleet/policy wiring)") {
  Engine engine;
  Recorder r;
  engine.set_observer(&r);
  const DeviceIndex d = engine.intern("d");
  engine.set_label(d, "site", "x");
  engine.on_event(conn(d, 10, 1));
  engine.on_event(conn(d, 20, 1));  // duplicate: not a connect
  engine.on_event(fleet(EventKind::IngestLost, 30));
  engine.on_event(fleet(EventKind::IngestRestored, 40));
  engine.tick(mono_ms(40 + kDefaults.restart_grace_min.count()));
  std::vector<AlertIntent> alerts;
  engine.drain_alerts(alerts);
  CHECK(alerts.size() == 1);
  const std::vector<std::string> want = {
      "label site=x", "connect 10", "transition online", "blind", "sighted", "grace",
      "grace end", "transition offline", "tick " + std::to_string(40 + kDefaults.restart_grace_min.count())};
  CHECK(r.log == want);
}

TEST_CASE("a device whose heartbeat period grows from 10 s to 5 min adapts and settles online") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  std::int64_t t = 0;
  for (int i = 0; i < 10; ++i, t += 10 * kSec) engine.on_event(hb(d, t));
  drain(engine);
  for (int i = 0; i < 12; ++i, t += 300 * kSec) engine.on_event(hb(d, t));
  drain(engine);
  CHECK(engine.view(d).heartbeat_timeout > std::chrono::seconds(300));
  // Converged: a whole hour of 5-minute heartbeats without a single decision.
  for (int i = 0; i < 12; ++i, t += 300 * kSec) engine.on_event(hb(d, t));
  engine.tick(mono_ms(t - 300 * kSec + 1));
  CHECK(drain(engine).empty());
  CHECK(engine.view(d).state == State::Online);
}

TEST_CASE("an outage inflates the heartbeat mean only a little (gap clamped to 2 x timeout)") {
  Engine engine;
  const DeviceIndex d = engine.intern("d");
  std::int64_t t = 0;
  for (int i = 0; i < 10; ++i, t += 10 * kSec) engine.on_event(hb(d, t));
  CHECK(engine.view(d).heartbeat_timeout == std::chrono::seconds(30));
  t += 24LL * 3600 * kSec;  // a day of silence, no disconnect
  engine.on_event(hb(d, t));
  // mean 10 s -> 10 + (60 - 10) / 4 = 22.5 s: timeout 67.5 s, not the 30 min ceiling.
  CHECK(engine.view(d).heartbeat_timeout == Duration{67500});
}

namespace {
Event retained(Event e) {
  e.retained = true;
  return e;
}
}  // namespace

TEST_CASE("same broker boot: a retained 'online' replay after reconnecting is restart grace evidence") {
  // Session-only devices show no live evidence after presenced reconnects; their retained
  // "online" is valid while the broker did not restart (their will would have replaced it).
  Engine engine;
  const DeviceIndex a = engine.intern("a");
  const DeviceIndex b = engine.intern("b");
  engine.on_event(conn(a, 0, 1));
  engine.on_event(conn(b, 0, 1));
  engine.on_event(fleet(EventKind::IngestLost, 10 * kSec));
  engine.on_event(fleet(EventKind::IngestRestored, 20 * kSec));
  engine.on_event(retained(conn(a, 20 * kSec)));
  engine.on_event(retained(disc(b, 20 * kSec)));  // its will fired while we were blind
  CHECK(engine.restart_grace().returned == 0);      // retained replays are not growth
  drain(engine);
  engine.tick(mono_ms(20 * kSec + 3600 * kSec));
  auto t = one(engine, State::Offline);
  CHECK(t.device == b);
  CHECK(t.cause == Cause::RestartGrace);
  CHECK(engine.view(a).state == State::Online);
}

TEST_CASE("presenced restart (restore) with retained 'online' replays keeps devices online (incident 002)") {
  Engine first;
  const DeviceIndex a = first.intern("a");
  first.on_event(conn(a, 0, 1));
  const auto snap = first.snapshot();
  Engine second;
  second.restore(snap, mono_ms(1000 * kSec));
  second.on_event(fleet(EventKind::IngestRestored, 1001 * kSec));
  second.on_event(retained(conn(*second.find("a"), 1001 * kSec)));
  second.tick(mono_ms(5000 * kSec));
  CHECK(drain(second).empty());
  CHECK(second.view(*second.find("a")).state == State::Online);
}

TEST_CASE("a broker restart voids retained evidence, whenever it is learned in the grace") {
  for (int order = 0; order < 3; ++order) {
    CAPTURE(order);
    Engine engine;
    const DeviceIndex a = engine.intern("a");
    engine.on_event(conn(a, 0, 1));
    engine.on_event(fleet(EventKind::IngestLost, 10 * kSec));
    if (order == 0) engine.on_event(fleet(EventKind::BrokerRestarted, 15 * kSec));  // while blind
    engine.on_event(fleet(EventKind::IngestRestored, 20 * kSec));
    if (order == 1) engine.on_event(fleet(EventKind::BrokerRestarted, 20 * kSec));
    engine.on_event(retained(conn(a, 21 * kSec)));
    if (order == 2) engine.on_event(fleet(EventKind::BrokerRestarted, 22 * kSec));  // learned late
    drain(engine);
    engine.tick(mono_ms(3600 * kSec));
    auto t = one(engine, State::Offline);
    CHECK(t.cause == Cause::RestartGrace);
  }
}

TEST_CASE("pipelined on_event: every read through the engine sees every event; observers after flush") {
  Engine engine;
  Recorder r;
  engine.set_observer(&r);
  const DeviceIndex d = engine.intern("d");
  engine.on_event(conn(d, 10, 1));
  // Still in the pipeline: the observer has not seen it...
  CHECK(r.log.empty());
  // ...but any engine read processes it first.
  CHECK(engine.view(d).state == State::Online);
  CHECK(r.log.size() == 2);
  engine.on_event(disc(d, 20, 1));
  engine.flush();
  CHECK(r.log.back() == "transition suspect");
  // A full pipeline processes the oldest event on each new one.
  std::vector<DeviceIndex> ds;
  for (int i = 0; i < 20; ++i) ds.push_back(engine.intern("p" + std::to_string(i)));
  const auto before = r.log.size();
  for (int i = 0; i < 20; ++i) engine.on_event(conn(ds[static_cast<std::size_t>(i)], 30, 1));
  CHECK(r.log.size() > before);
  engine.flush();
  CHECK(r.log.size() == before + 40);  // connect + transition each
}

namespace {
// Reads the engine from inside a callback, as fleet/policy may: must see the state as of the
// decision, and must not make the engine process later events re-entrantly.
struct Reader : DecisionObserver {
  Engine* engine = nullptr;
  int transitions = 0;
  bool consistent = true;
  void on_transition(const Transition& t) override {
    ++transitions;
    if (engine->view(t.device).state != t.to) consistent = false;
    if (engine->now() != t.at) consistent = false;
  }
};
}  // namespace

TEST_CASE("an observer reading the engine mid-event sees the decision's state, no re-entrancy") {
  Engine engine;
  Reader r;
  r.engine = &engine;
  engine.set_observer(&r);
  std::vector<DeviceIndex> ds;
  for (int i = 0; i < 30; ++i) ds.push_back(engine.intern("r" + std::to_string(i)));
  for (int i = 0; i < 30; ++i) {
    engine.on_event(conn(ds[static_cast<std::size_t>(i)], i * 1000, 1));
    engine.on_event(disc(ds[static_cast<std::size_t>(i)], i * 1000 + 500, 1));
  }
  engine.tick(mono_ms(1000 * kSec));
  CHECK(r.transitions == 90);  // online, suspect, offline each
  CHECK(r.consistent);
}

TEST_CASE("an unchanged label is not re-announced to the observer") {
  Engine engine;
  Recorder r;
  engine.set_observer(&r);
  const DeviceIndex a = engine.intern("a");
  engine.set_label(a, "site", "x");
  engine.set_label(a, "site", "x");
  engine.set_label(a, "fw", "1");
  engine.set_label(a, "site", "y");
  engine.set_label(a, "nope", "");
  CHECK(r.log == std::vector<std::string>{"label site=x", "label fw=1", "label site=y"});
  CHECK(engine.labels(a) == std::vector<Label>{{"fw", "1"}, {"site", "y"}});
}

namespace {
// Ends the restart grace that restore() started: no growth, so it ends at restart_grace_min.
const std::int64_t kGraceMin = kDefaults.restart_grace_min.count();
}  // namespace

TEST_CASE("issue 19/1: restored offline, retained 'online' of the same broker boot: online after the grace + online_stable_for") {
  // The device came back before presenced restarted but was not yet past online_stable_for, so
  // the snapshot says offline. Its retained "online" is the current truth (no broker restart).
  Engine first;
  const DeviceIndex a0 = first.intern("a");
  first.on_event(conn(a0, 0, 1));
  first.on_event(disc(a0, 10 * kSec, 1));
  first.tick(mono_ms(10 * kSec + kGrace));
  REQUIRE(first.view(a0).state == State::Offline);
  first.on_event(conn(a0, 50 * kSec, 2));  // back, inside online_stable_for
  REQUIRE(first.view(a0).state == State::Offline);
  const auto snap = first.snapshot();

  Engine second;
  const std::int64_t t0 = 1000 * kSec;
  second.restore(snap, mono_ms(t0));
  const DeviceIndex a = *second.find("a");
  second.on_event(retained(conn(a, t0)));
  const std::int64_t grace_end = t0 + kGraceMin;
  second.tick(mono_ms(grace_end + kStable - 1));
  CHECK(drain(second).empty());
  CHECK(second.view(a).state == State::Offline);
  second.tick(mono_ms(grace_end + kStable));
  auto t = one(second, State::Online);
  CHECK(t.cause == Cause::StableOnline);
  CHECK(t.at == mono_ms(grace_end + kStable));
  second.tick(mono_ms(grace_end + kStable + 1));
  CHECK(drain(second).empty());
}

TEST_CASE("issue 19/1: restored suspect, retained 'online' of the same boot: online at the grace end") {
  Engine first;
  const DeviceIndex a0 = first.intern("a");
  first.on_event(conn(a0, 0, 1));
  first.on_event(disc(a0, 10 * kSec, 1));
  REQUIRE(first.view(a0).state == State::Suspect);
  const auto snap = first.snapshot();
  Engine second;
  const std::int64_t t0 = 1000 * kSec;
  second.restore(snap, mono_ms(t0));
  const DeviceIndex a = *second.find("a");
  second.on_event(retained(conn(a, t0)));
  second.tick(mono_ms(t0 + kGraceMin - 1));
  CHECK(drain(second).empty());
  second.tick(mono_ms(t0 + kGraceMin));
  auto t = one(second, State::Online);
  CHECK(t.cause == Cause::Resync);
}

TEST_CASE("issue 19/1: the retained 'online' does not bring back a device after a broker restart, nor after a retained 'offline'") {
  for (int variant = 0; variant < 2; ++variant) {
    CAPTURE(variant);
    Engine first;
    const DeviceIndex a0 = first.intern("a");
    first.on_event(conn(a0, 0, 1));
    first.on_event(disc(a0, 10 * kSec, 1));
    first.tick(mono_ms(10 * kSec + kGrace));
    const auto snap = first.snapshot();
    Engine second;
    const std::int64_t t0 = 1000 * kSec;
    second.restore(snap, mono_ms(t0));
    const DeviceIndex a = *second.find("a");
    second.on_event(retained(conn(a, t0)));
    if (variant == 0) second.on_event(fleet(EventKind::BrokerRestarted, t0 + 1));
    else second.on_event(retained(disc(a, t0 + 1)));
    second.tick(mono_ms(t0 + 3600 * kSec));
    CHECK(drain(second).empty());
    CHECK(second.view(a).state == State::Offline);
  }
}
