// Engine behaviour through its public API, with a simulated clock (STYLE.md habits 1-2).
#include "presence/core/engine.h"

#include <doctest/doctest.h>

#include <vector>

using namespace presence::core;

namespace {

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

std::vector<Transition> drain(Engine& engine) {
  std::vector<Transition> out;
  engine.drain(out);
  return out;
}

}  // namespace

TEST_CASE("connect makes a device online; disconnect goes suspect then offline after offline_grace") {
  Config c;
  Engine engine(c);
  const DeviceIndex d = engine.intern("dev-1");
  CHECK(engine.id_of(d) == "dev-1");
  CHECK(engine.find("dev-1") == d);
  engine.on_event(ev(EventKind::Connected, d, 1000, 1));
  auto t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].from == State::Unknown);
  CHECK(t[0].to == State::Online);
  engine.on_event(ev(EventKind::Disconnected, d, 2000, 1, DisconnectReason::LastWill));
  t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].to == State::Suspect);
  const std::int64_t grace = c.offline_grace.count();
  engine.tick(mono_ms(2000 + grace - 1));
  CHECK(drain(engine).empty());
  engine.tick(mono_ms(2000 + grace));
  t = drain(engine);
  REQUIRE(t.size() == 1);
  CHECK(t[0].to == State::Offline);
  CHECK(t[0].cause == Cause::OfflineGrace);
  CHECK(t[0].disconnect_reason == DisconnectReason::LastWill);
  CHECK(to_ms(t[0].at) == 2000 + grace);
}
