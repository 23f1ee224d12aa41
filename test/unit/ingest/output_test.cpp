// Tests presence/ingest/output.*: payload builders and the coalescing rate limiter, with a
// simulated clock (T-1, T, T+1 on the token refill).
#include "presence/ingest/output.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

using namespace presence::ingest;
using presence::core::DeviceIndex;
using presence::core::mono_ms;

TEST_CASE("iso8601 renders UTC with milliseconds") {
  using std::chrono::milliseconds;
  using std::chrono::system_clock;
  CHECK(iso8601(system_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
  CHECK(iso8601(system_clock::time_point{milliseconds(1234567890123)}) ==
        "2009-02-13T23:31:30.123Z");
}

TEST_CASE("WallAnchor converts engine time to wall clock") {
  WallAnchor a;
  a.mono = mono_ms(10'000);
  a.wall = std::chrono::system_clock::time_point{std::chrono::milliseconds(1'000'000)};
  CHECK(iso8601(a.to_wall(mono_ms(10'500))) == iso8601(a.wall + std::chrono::milliseconds(500)));
  CHECK(iso8601(a.to_wall(mono_ms(9'000))) == iso8601(a.wall - std::chrono::seconds(1)));
}

TEST_CASE("device_json is versioned and carries state, since, reason, labels") {
  WallAnchor a;
  a.mono = mono_ms(0);
  a.wall = std::chrono::system_clock::time_point{};
  presence::core::DeviceView v;
  v.id = "d1";
  v.state = presence::core::State::Suspect;
  v.since = mono_ms(1500);
  v.cause = presence::core::Cause::Disconnected;
  v.disconnect_reason = presence::core::DisconnectReason::LastWill;
  const auto j = nlohmann::json::parse(device_json(v, {{"site", "x"}}, a));
  CHECK(j["v"] == 1);
  CHECK(j["device"] == "d1");
  CHECK(j["state"] == "suspect");
  CHECK(j["since"] == "1970-01-01T00:00:01.500Z");
  CHECK(j["reason"] == presence::core::to_string(presence::core::Cause::Disconnected));
  CHECK(j["disconnect_reason"] ==
        presence::core::to_string(presence::core::DisconnectReason::LastWill));
  CHECK(j["labels"]["site"] == "x");

  v.state = presence::core::State::Online;
  v.cause = presence::core::Cause::Heartbeat;
  const auto k = nlohmann::json::parse(device_json(v, {}, a));
  CHECK(k["state"] == "online");
  CHECK_FALSE(k.contains("disconnect_reason"));
  CHECK(k["labels"].is_object());
}

TEST_CASE("device_json: a down device behind a down parent reads unreachable and names the parent") {
  using presence::core::State;
  WallAnchor a;
  a.mono = mono_ms(0);
  presence::core::DeviceView v;
  v.id = "plant/edge-7/pump-3";
  v.cause = presence::core::Cause::Disconnected;
  for (State s : {State::Suspect, State::Offline, State::Flapping}) {
    v.state = s;
    const auto j = nlohmann::json::parse(device_json(v, {}, a, "plant/edge-7"));
    CHECK(j["state"] == "unreachable");
    CHECK(j["parent"] == "plant/edge-7");
    CHECK(j["v"] == 1);
    // No parent down: its own word, no parent field (the payload without parents is unchanged).
    const auto k = nlohmann::json::parse(device_json(v, {}, a));
    CHECK(k["state"] == presence::core::to_string(s));
    CHECK_FALSE(k.contains("parent"));
  }
  // Online (or not yet known) behind a down parent: it is evidently reachable; its own word.
  for (State s : {State::Online, State::Unknown}) {
    v.state = s;
    const auto j = nlohmann::json::parse(device_json(v, {}, a, "plant/edge-7"));
    CHECK(j["state"] == presence::core::to_string(s));
    CHECK_FALSE(j.contains("parent"));
  }
}

TEST_CASE("fleet_json counts every state") {
  FleetStatus f;
  f.counts = {1, 2, 3, 4, 5};
  f.devices = 15;
  f.blind = true;
  f.restart_grace = false;
  const auto j = nlohmann::json::parse(fleet_json(f, std::chrono::system_clock::time_point{}));
  CHECK(j["v"] == 1);
  CHECK(j["devices"] == 15);
  CHECK(j["counts"]["unknown"] == 1);
  CHECK(j["counts"]["online"] == 2);
  CHECK(j["counts"]["suspect"] == 3);
  CHECK(j["counts"]["offline"] == 4);
  CHECK(j["counts"]["flapping"] == 5);
  CHECK(j["blind"] == true);
  CHECK(j["restart_grace"] == false);
}

TEST_CASE("PublishQueue coalesces: a device is queued once, latest state wins at send time") {
  PublishQueue q(100);
  q.mark(3, mono_ms(0));
  q.mark(1, mono_ms(0));
  q.mark(3, mono_ms(0));
  CHECK(q.pending() == 2);
  bool fleet = true;
  std::vector<DeviceIndex> out;
  q.take(mono_ms(0), fleet, out);
  CHECK_FALSE(fleet);
  REQUIRE(out.size() == 2);
  CHECK(out[0] == 3);
  CHECK(out[1] == 1);
  CHECK(q.pending() == 0);
}

TEST_CASE("PublishQueue: burst of one second, then max_messages_per_second") {
  PublishQueue q(10);
  for (DeviceIndex d = 0; d < 25; ++d) q.mark(d, mono_ms(0));
  bool fleet = false;
  std::vector<DeviceIndex> out;
  q.take(mono_ms(1000), fleet, out);
  CHECK(out.size() == 10);  // burst
  out.clear();
  q.take(mono_ms(1099), fleet, out);  // T-1: 0.99 tokens
  CHECK(out.empty());
  q.take(mono_ms(1100), fleet, out);  // T: one token
  CHECK(out.size() == 1);
  out.clear();
  q.take(mono_ms(1201), fleet, out);  // T+1 of the next token
  CHECK(out.size() == 1);
  out.clear();
  q.take(mono_ms(60'000), fleet, out);  // long idle: bucket capped at one second's worth
  CHECK(out.size() == 10);
  CHECK(q.pending() == 3);
}

TEST_CASE("PublishQueue: fleet first, put_back goes first again, take_all ignores budget") {
  PublishQueue q(2);
  q.mark(7, mono_ms(0));
  q.mark(8, mono_ms(0));
  q.mark_fleet();
  bool fleet = false;
  std::vector<DeviceIndex> out;
  q.take(mono_ms(0), fleet, out);
  CHECK(fleet);
  REQUIRE(out.size() == 1);
  CHECK(out[0] == 7);
  q.put_back(true, out);  // broker went away before it was sent
  CHECK(q.pending() == 3);
  out.clear();
  q.take_all(fleet, out);
  CHECK(fleet);
  REQUIRE(out.size() == 2);
  CHECK(out[0] == 7);
  CHECK(out[1] == 8);
  CHECK(q.pending() == 0);
}

TEST_CASE("PublishQueue: set_rate applies live") {
  PublishQueue q(100);
  q.set_rate(1);
  for (DeviceIndex d = 0; d < 5; ++d) q.mark(d, mono_ms(0));
  bool fleet = false;
  std::vector<DeviceIndex> out;
  q.take(mono_ms(0), fleet, out);
  CHECK(out.size() == 1);
}

TEST_CASE("PublishQueue: rate <= 0 is unlimited") {
  PublishQueue q(0);
  for (DeviceIndex d = 0; d < 5000; ++d) q.mark(d, mono_ms(0));
  bool fleet = false;
  std::vector<DeviceIndex> out;
  q.take(mono_ms(0), fleet, out);
  CHECK(out.size() == 5000);
}

TEST_CASE("PublishQueue: at most one message per device per coalesce_interval, latest wins") {
  PublishQueue q(0, std::chrono::milliseconds(1000));
  bool fleet = false;
  std::vector<DeviceIndex> out;
  q.mark(1, mono_ms(0));
  q.take(mono_ms(0), fleet, out);  // first change goes out at once
  CHECK(out.size() == 1);
  out.clear();
  q.mark(1, mono_ms(100));  // changes again: held until 0 + 1000
  q.mark(1, mono_ms(200));  // and again: still one pending message
  q.mark(2, mono_ms(200));  // another device is not held
  CHECK(q.pending() == 2);
  q.take(mono_ms(200), fleet, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0] == 2);
  out.clear();
  q.take(mono_ms(999), fleet, out);  // T-1
  CHECK(out.empty());
  q.take(mono_ms(1000), fleet, out);  // T
  REQUIRE(out.size() == 1);
  CHECK(out[0] == 1);
  out.clear();
  q.mark(1, mono_ms(2001));  // T+1 after the last send: not held
  q.take(mono_ms(2001), fleet, out);
  CHECK(out.size() == 1);
}

TEST_CASE("PublishQueue: take_all includes held devices") {
  PublishQueue q(0, std::chrono::seconds(10));
  bool fleet = false;
  std::vector<DeviceIndex> out;
  q.mark(4, mono_ms(0));
  q.take(mono_ms(0), fleet, out);
  out.clear();
  q.mark(4, mono_ms(1));
  q.take_all(fleet, out);
  REQUIRE(out.size() == 1);
  CHECK(out[0] == 4);
  CHECK(q.pending() == 0);
}

// Issue 19 item 9: a flood of new (junk) ids must not delay the changes of known devices.
TEST_CASE("PublishQueue: real changes go before background states (new ids, restatements)") {
  PublishQueue q(10);  // 10 messages/s, burst 10
  std::vector<DeviceIndex> out;
  bool fleet = false;
  // Device 0 is known: it was published once.
  q.mark(0, mono_ms(0), /*background=*/true);
  q.take(mono_ms(0), fleet, out);
  REQUIRE(out == std::vector<DeviceIndex>{0});
  // 1,000 new ids flood in, then device 0 changes.
  for (DeviceIndex d = 1; d <= 1000; ++d) q.mark(d, mono_ms(1000), /*background=*/true);
  q.mark(0, mono_ms(1000));
  CHECK(q.pending() == 1001);
  CHECK(q.pending_background() == 1000);
  out.clear();
  q.take(mono_ms(1000), fleet, out);
  REQUIRE(!out.empty());
  CHECK(out.front() == 0);  // first, although marked last
  CHECK(out.size() == 10);  // the budget is still the limit
  CHECK(q.pending() == 991);
  CHECK(q.pending_background() == 991);
  // A restatement of a device already sent (after a reconnect) is background too.
  q.mark(0, mono_ms(2000), /*background=*/true);
  CHECK(q.pending_background() == 992);
  q.mark(5000, mono_ms(2000));
  out.clear();
  q.take(mono_ms(2000), fleet, out);
  REQUIRE(!out.empty());
  CHECK(out.front() == 5000);
}

TEST_CASE("PublishQueue: a device waiting in the background moves up when it really changes") {
  PublishQueue q(1);  // one message a second
  std::vector<DeviceIndex> out;
  bool fleet = false;
  for (DeviceIndex d = 0; d < 5; ++d) q.mark(d, mono_ms(0), /*background=*/true);
  q.mark(3, mono_ms(0));  // a real change of device 3 (e.g. it went offline)
  CHECK(q.pending() == 5);
  CHECK(q.pending_background() == 4);
  q.take(mono_ms(0), fleet, out);
  CHECK(out == std::vector<DeviceIndex>{3});
  out.clear();
  // T-1 ms: no token yet; T: the next first state, in arrival order; 3 is not sent twice.
  q.take(mono_ms(999), fleet, out);
  CHECK(out.empty());
  q.take(mono_ms(1000), fleet, out);
  CHECK(out == std::vector<DeviceIndex>{0});
  out.clear();
  bool f = false;
  q.take_all(f, out);
  CHECK(out == std::vector<DeviceIndex>{1, 2, 4});
  CHECK(q.pending() == 0);
}

TEST_CASE("PublishQueue: the final flush (take_all without background) leaves restatements") {
  // Issue 16 item 3: after a restart with 1 M devices the restatement is 1 M messages; SIGTERM
  // flushed them all, overran the shutdown budget and presenced was killed before its final
  // snapshot. Real changes go out, first states and restatements wait for the next start.
  PublishQueue q(1000.0);
  std::vector<DeviceIndex> out;
  bool fleet = false;
  for (DeviceIndex d = 0; d < 5; ++d) q.mark(d, mono_ms(0), /*background=*/true);
  q.mark(3, mono_ms(0));  // a real change
  q.mark(7, mono_ms(0));
  q.mark_fleet();
  q.take_all(fleet, out, /*background=*/false);
  CHECK(fleet);
  CHECK(out == std::vector<DeviceIndex>{3, 7});
  CHECK(q.pending() == 4);
  CHECK(q.pending_background() == 4);
  out.clear();
  q.take_all(fleet, out, /*background=*/false);
  CHECK(out.empty());
  CHECK(q.pending() == 4);
  q.take_all(fleet, out);
  CHECK(out == std::vector<DeviceIndex>{0, 1, 2, 4});
  CHECK(q.pending() == 0);
  CHECK(q.pending_background() == 0);
}
