// The snapshot contract end to end with the real core: Engine::snapshot() -> SnapshotStore ->
// (restart: steady clock starts over) -> Engine::restore(). States, labels and "since" survive.
#include <doctest/doctest.h>

#include "presence/core/engine.h"
#include "presence/store/snapshot.h"
#include "test/support/process.h"

using namespace presence;
using namespace presence::store;

namespace {

core::Event ev(core::EventKind kind, core::DeviceIndex d, std::int64_t at_ms,
               core::DisconnectReason reason = core::DisconnectReason::Unknown) {
  core::Event e;
  e.kind = kind;
  e.device = d;
  e.reason = reason;
  e.source = core::Source::Status;
  e.at = core::mono_ms(at_ms);
  return e;
}

}  // namespace

TEST_CASE("engine state survives snapshot, restart and restore") {
  presence::test::TempDir dir;
  SnapshotStore store(dir.file("state.snap"), [](std::string_view) {});

  core::Engine before;
  const auto a = before.intern("dev-a");
  const auto b = before.intern("dev-b");
  before.set_label(a, "site", "lab");
  before.on_event(ev(core::EventKind::Connected, a, 1'000));
  before.on_event(ev(core::EventKind::Connected, b, 1'000));
  before.on_event(ev(core::EventKind::Disconnected, b, 5'000, core::DisconnectReason::LastWill));
  before.tick(core::mono_ms(120'000));  // past offline_grace: b is offline
  REQUIRE(before.view(b).state == core::State::Offline);
  const auto snap = before.snapshot();
  REQUIRE(snap.size() == 2);

  // Steady ms 120000 is wall 1'700'000'000'000 at save time.
  const WallAnchor saved{
      std::chrono::system_clock::time_point{std::chrono::milliseconds{1'700'000'000'000}},
      core::mono_ms(120'000)};
  REQUIRE(store.save(snap, "open-incidents-blob", saved));

  // Restart 30 s later: the steady clock now reads 2000.
  const WallAnchor now{
      std::chrono::system_clock::time_point{std::chrono::milliseconds{1'700'000'030'000}},
      core::mono_ms(2'000)};
  const LoadResult r = store.load(now);
  REQUIRE(r.status == LoadStatus::Ok);
  CHECK(r.snapshot.incidents == "open-incidents-blob");

  core::Engine after;
  after.restore(r.snapshot.devices, core::mono_ms(2'000));
  const auto ra = after.find("dev-a");
  const auto rb = after.find("dev-b");
  REQUIRE(ra.has_value());
  REQUIRE(rb.has_value());
  CHECK(after.view(*ra).state == before.view(a).state);
  CHECK(after.view(*rb).state == core::State::Offline);
  // since moved with the clocks: same distance before "now" as before the save, plus 30 s.
  const auto before_age = 120'000 - core::to_ms(before.view(b).since);
  const auto after_age = 2'000 - core::to_ms(r.snapshot.devices[1].since);
  CHECK(after_age == before_age + 30'000);
  const auto labels = after.labels(*ra);
  REQUIRE(labels.size() == 1);
  CHECK(labels[0].first == "site");
  CHECK(labels[0].second == "lab");
}
