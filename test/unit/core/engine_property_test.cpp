// Property test: seeded random event sequences (out of order, duplicated, stale sessions,
// takeovers, retained replays, blind spots, broker restarts) never produce an impossible
// transition, and the engine is deterministic.
#include "presence/core/engine.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace presence::core;

namespace {

struct Run {
  std::vector<Transition> transitions;
  EngineCounters counters;
};

Run run(std::uint64_t seed, int devices, int events, bool check, std::uint64_t max_gap_ms = 1500,
        bool expiry = false) {
  Config c;
  // Expiry (forget_after) off unless asked: then devices are forgotten and re-interned as ingest
  // does (intern per message), and the model follows their indices.
  c.forget_after = expiry ? std::chrono::seconds(60) : Duration{0};
  c.forget_unconfirmed_after = expiry ? std::chrono::seconds(20) : Duration{0};
  // Short windows so that every path (grace, stable, flap stop, restart grace) happens often.
  c.offline_grace = std::chrono::seconds(5);
  c.online_stable_for = std::chrono::seconds(8);
  c.heartbeat_default_interval = std::chrono::seconds(4);
  c.heartbeat_timeout_floor = std::chrono::seconds(2);
  c.heartbeat_timeout_ceiling = std::chrono::seconds(60);
  c.flap_window = std::chrono::seconds(60);
  c.restart_grace_min = std::chrono::seconds(5);
  c.restart_grace_max = std::chrono::seconds(40);
  c.restart_grace_settle = std::chrono::seconds(3);
  Engine engine(c);
  std::mt19937_64 rng(seed);
  std::vector<DeviceIndex> ids;
  for (int i = 0; i < devices; ++i) ids.push_back(engine.intern("dev-" + std::to_string(i)));
  std::vector<std::uint64_t> session(static_cast<std::size_t>(devices), 1);
  // Indexed by device index; forgotten indices are reused, so the range is at most twice the fleet.
  std::vector<State> last(2 * static_cast<std::size_t>(devices), State::Unknown);
  std::int64_t now = 0;
  std::int64_t last_at = 0;
  Run out;
  std::vector<Transition> batch;
  for (int n = 0; n < events; ++n) {
    now += static_cast<std::int64_t>(rng() % max_gap_ms);
    Event e;
    e.at = mono_ms(now - static_cast<std::int64_t>(rng() % 3 == 0 ? rng() % 2000 : 0));  // late
    const auto idx = static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(devices));
    if (auto known = engine.find("dev-" + std::to_string(idx))) {
      e.device = *known;
    } else {  // forgotten: a new device, as ingest would intern it
      e.device = engine.intern("dev-" + std::to_string(idx));
      REQUIRE(e.device < last.size());
      last[e.device] = State::Unknown;
    }
    ids[idx] = e.device;
    const auto r = rng() % 1000;
    bool tick = false;
    if (r < 300) {
      e.kind = EventKind::Heartbeat;
      if (rng() % 4 == 0) e.session = session[idx];
    } else if (r < 550) {
      e.kind = EventKind::Connected;
      if (rng() % 5 != 0) e.session = ++session[idx];
    } else if (r < 800) {
      e.kind = EventKind::Disconnected;
      e.reason = static_cast<DisconnectReason>(rng() % 6);
      const auto s = rng() % 4;
      e.session = s == 0 ? 0 : (s == 1 && session[idx] > 1 ? session[idx] - 1 : session[idx]);
    } else if (r < 820) {
      e.kind = rng() % 2 ? EventKind::Connected : EventKind::Disconnected;
      e.retained = true;
    } else if (r < 826) {
      e.kind = EventKind::IngestLost;
      e.device = kNoDevice;
    } else if (r < 834) {
      e.kind = EventKind::IngestRestored;
      e.device = kNoDevice;
    } else if (r < 837) {
      e.kind = EventKind::BrokerRestarted;
      e.device = kNoDevice;
      for (auto& s : session) s = 1;
    } else {
      tick = true;
      now += static_cast<std::int64_t>(rng() % 20000);
    }
    const bool blind_before = engine.blind();
    const bool grace_before = engine.in_restart_grace();
    const auto graces_before = engine.counters().restart_graces;
    if (tick) engine.tick(mono_ms(now));
    else engine.on_event(e);
    if (rng() % 50 == 0) engine.on_event(e);  // duplicate delivery
    batch.clear();
    engine.drain(batch);
    if (check) {
      const bool held = (blind_before && engine.blind()) ||
                        (grace_before && engine.in_restart_grace() &&
                         engine.counters().restart_graces == graces_before);
      for (const auto& t : batch) {
        REQUIRE(t.device < static_cast<DeviceIndex>(last.size()));
        auto& prev = last[t.device];
        CHECK(t.from != t.to);
        CHECK(t.from == prev);
        CHECK(to_ms(t.at) >= last_at);
        last_at = to_ms(t.at);
        CHECK(t.to != State::Unknown);
        if (held && t.to == State::Offline) CHECK(t.cause == Cause::Resync);
        if (t.to == State::Flapping) CHECK(t.cause == Cause::FlapStart);
        if (t.from == State::Flapping) {
          CHECK((t.cause == Cause::FlapStop || t.cause == Cause::RestartGrace));
        }
        if (t.from == State::Offline && t.to == State::Online) CHECK(t.cause == Cause::StableOnline);
        if (t.cause == Cause::RestartGrace) {
          CHECK(t.to == State::Offline);
          CHECK(grace_before);  // only a grace that was running can end
        }
        prev = t.to;
      }
      std::array<std::size_t, 5> counts{};
      for (int i = 0; i < devices; ++i) {
        const std::string name = "dev-" + std::to_string(i);
        const auto found = engine.find(name);
        if (!found) {
          // Forgotten: only a settled, down device; never one the model thinks is up or judged.
          const auto old = ids[static_cast<std::size_t>(i)];
          CHECK(expiry);
          if (old == kNoDevice) continue;  // already seen gone
          CHECK((last[old] == State::Offline || last[old] == State::Unknown));
          last[old] = State::Unknown;
          ids[static_cast<std::size_t>(i)] = kNoDevice;  // its index may name another id now
          continue;
        }
        // Forgotten and revived in one batch: the old index is a hole until the drain released it.
        auto& had = ids[static_cast<std::size_t>(i)];
        if (had != kNoDevice && had != *found) last[had] = State::Unknown;
        had = *found;
        const auto v = engine.view(*found);
        CHECK(v.id == name);
        CHECK(v.state == last[*found]);
        ++counts[static_cast<std::size_t>(v.state)];
      }
      CHECK(counts == engine.counts());
      CHECK(engine.device_count() <= static_cast<std::size_t>(devices));
    }
    out.transitions.insert(out.transitions.end(), batch.begin(), batch.end());
  }
  out.counters = engine.counters();
  return out;
}

bool same(const std::vector<Transition>& a, const std::vector<Transition>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].device != b[i].device || a[i].from != b[i].from || a[i].to != b[i].to ||
        a[i].cause != b[i].cause || a[i].at != b[i].at ||
        a[i].disconnect_reason != b[i].disconnect_reason) {
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("random event sequences never produce an impossible transition") {
  for (std::uint64_t seed = 1; seed <= 8; ++seed) {
    CAPTURE(seed);
    const Run r = run(seed, 40, 6000, true);
    // The sequences do exercise the rules under test.
    CHECK(r.counters.stale_events > 0);
    CHECK(r.counters.duplicate_events > 0);
    CHECK(r.counters.takeover_events > 0);
    CHECK(r.counters.restart_graces > 0);
    std::array<int, 10> causes{};
    for (const auto& t : r.transitions) ++causes[static_cast<std::size_t>(t.cause)];
    CHECK(causes[static_cast<std::size_t>(Cause::OfflineGrace)] > 0);
    CHECK(causes[static_cast<std::size_t>(Cause::StableOnline)] > 0);
    CHECK(causes[static_cast<std::size_t>(Cause::RestartGrace)] > 0);
    CHECK(causes[static_cast<std::size_t>(Cause::HeartbeatTimeout)] > 0);
  }
}

TEST_CASE("with expiry on, forgotten devices come back as new ones and every invariant holds") {
  std::uint64_t forgotten = 0;
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    CAPTURE(seed);
    const Run r = run(seed, 40, 6000, true, 4000, /*expiry=*/true);
    forgotten += r.counters.devices_forgotten;
  }
  CHECK(forgotten > 20);  // the sequences do exercise expiry
}

TEST_CASE("flap paths are exercised by a bouncier fleet") {
  const Run r = run(99, 4, 20000, true, 200);
  std::array<int, 10> causes{};
  for (const auto& t : r.transitions) ++causes[static_cast<std::size_t>(t.cause)];
  CHECK(causes[static_cast<std::size_t>(Cause::FlapStart)] > 0);
  CHECK(causes[static_cast<std::size_t>(Cause::FlapStop)] > 0);
}

TEST_CASE("deterministic: same events and times give the same decisions") {
  const Run a = run(7, 30, 5000, false);
  const Run b = run(7, 30, 5000, false);
  CHECK(same(a.transitions, b.transitions));
  CHECK_FALSE(a.transitions.empty());
}
