// presence/core/naive.*: alerts.mode naive, the Home-Assistant-style baseline (issue 6), with a
// simulated clock: a page at the very event, no grace, the same dedup_key scheme as the policy.
#include "presence/core/naive.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace presence::core;

namespace {

Event status(EventKind kind, DeviceIndex d, std::int64_t at_ms,
             DisconnectReason reason = DisconnectReason::LastWill) {
  Event e;
  e.kind = kind;
  e.device = d;
  e.at = mono_ms(at_ms);
  e.reason = reason;
  return e;
}

}  // namespace

TEST_CASE("an offline status pages at once; online resolves; each only once") {
  Engine engine;
  const DeviceIndex d = engine.intern("dev 1");
  NaiveAlerts naive;
  std::vector<AlertIntent> out;
  naive.on_event(engine, status(EventKind::Connected, d, 1000), out);
  CHECK(out.empty());  // nothing firing: nothing to resolve
  naive.on_event(engine, status(EventKind::Disconnected, d, 2000), out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].action == AlertIntent::Action::Trigger);
  CHECK(out[0].at == mono_ms(2000));  // the event's own time: no grace at all
  CHECK(out[0].dedup_key == "presence/device/dev 1");
  CHECK(out[0].component == "dev 1");
  CHECK(out[0].severity == Severity::Error);
  CHECK(naive.firing() == 1);
  naive.on_event(engine, status(EventKind::Disconnected, d, 2001), out);
  CHECK(out.size() == 1);  // already paged
  naive.on_event(engine, status(EventKind::Connected, d, 3000), out);
  REQUIRE(out.size() == 2);
  CHECK(out[1].action == AlertIntent::Action::Resolve);
  CHECK(out[1].dedup_key == out[0].dedup_key);
  CHECK(naive.firing() == 0);
}

TEST_CASE("a takeover is a reconnect and heartbeats are not availability") {
  Engine engine;
  const DeviceIndex d = engine.intern("a");
  NaiveAlerts naive;
  std::vector<AlertIntent> out;
  naive.on_event(engine, status(EventKind::Disconnected, d, 1000, DisconnectReason::Takeover), out);
  naive.on_event(engine, status(EventKind::Heartbeat, d, 1001), out);
  naive.on_event(engine, status(EventKind::BrokerRestarted, kNoDevice, 1002), out);
  CHECK(out.empty());
}

TEST_CASE("blind: every device not firing pages once; the firing set survives a restore") {
  Engine engine;
  const DeviceIndex a = engine.intern("a");
  engine.intern("b");
  NaiveAlerts naive;
  std::vector<AlertIntent> out;
  naive.on_event(engine, status(EventKind::Disconnected, a, 1000), out);
  REQUIRE(out.size() == 1);
  naive.on_blind(engine, mono_ms(5000), out);
  REQUIRE(out.size() == 2);  // b only: a already pages
  CHECK(out[1].component == "b");
  CHECK(out[1].at == mono_ms(5000));
  naive.on_blind(engine, mono_ms(6000), out);
  CHECK(out.size() == 2);

  NaiveAlerts restored;
  REQUIRE(restored.restore(naive.serialize()));
  CHECK(restored.firing() == 2);
  // What the outbox sent after the snapshot was taken is replayed over it, in order.
  AlertIntent resolve_a = out[0];
  resolve_a.action = AlertIntent::Action::Resolve;
  restored.replay_sent({resolve_a});
  CHECK(restored.firing() == 1);
  std::vector<AlertIntent> after;
  restored.on_event(engine, status(EventKind::Connected, a, 7000), after);
  CHECK(after.empty());  // a's page was resolved before the restart
}

TEST_CASE("naive snapshot text round-trips and refuses garbage") {
  NaiveAlerts a;
  CHECK(a.restore("presence-naive 1\ndev%201\n"));
  CHECK(a.firing() == 1);
  NaiveAlerts b;
  CHECK(b.restore(a.serialize()));
  CHECK(b.firing() == 1);
  NaiveAlerts c;
  CHECK_FALSE(c.restore("presence-alert-policy 1\n"));
  CHECK_FALSE(c.restore(""));
}
