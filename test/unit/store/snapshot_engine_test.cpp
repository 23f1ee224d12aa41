// The snapshot contract end to end with the real core: Engine::snapshot() -> SnapshotStore ->
// (restart: steady clock starts over) -> Engine::restore(). States, labels and "since" survive.
#include <doctest/doctest.h>

#include "presence/core/engine.h"
#include "presence/core/snapshot_slicer.h"
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

TEST_CASE("issue 16/3: a sliced copy encodes to the same file, byte for byte, and restores") {
  core::Engine engine;
  core::SnapshotSlicer slicer;
  engine.set_observer(&slicer);
  for (int i = 0; i < 50; ++i) {
    const auto d = engine.intern("dev-" + std::to_string(i));
    if (i % 2 == 0) engine.set_label(d, "site", i % 4 == 0 ? "north" : "south");
    if (i % 5 == 0) engine.set_label(d, "fw", "1.2");
    engine.on_event(ev(core::EventKind::Connected, d, 1'000));
    if (i % 7 == 0)
      engine.on_event(ev(core::EventKind::Disconnected, d, 2'000, core::DisconnectReason::LastWill));
  }
  engine.tick(core::mono_ms(60'000));
  const WallAnchor anchor{
      std::chrono::system_clock::time_point{std::chrono::milliseconds{1'700'000'000'000}},
      core::mono_ms(60'000)};
  slicer.begin();
  int steps = 1;
  while (!slicer.step(engine, 7)) ++steps;
  CHECK(steps == 8);  // 50 devices, 7 per slice
  const core::DeviceCopy copy = slicer.take();
  const std::string sliced = encode_copy(copy, "blob", anchor, 42);
  CHECK(sliced == encode_snapshot(engine.snapshot(), "blob", anchor, 42));

  // What an older release wrote is what this one writes: the reader is unchanged.
  const auto loaded = decode_snapshot(sliced, anchor);
  REQUIRE(loaded.status == LoadStatus::Ok);
  CHECK(loaded.snapshot.devices.size() == 50);
  CHECK(loaded.snapshot.outbox_seq == 42);
  core::Engine after;
  after.restore(loaded.snapshot.devices, core::mono_ms(60'000));
  for (int i = 0; i < 50; ++i) {
    const auto d = after.find("dev-" + std::to_string(i));
    REQUIRE(d);
    CHECK(after.view(*d).state == engine.view(*engine.find("dev-" + std::to_string(i))).state);
    CHECK(after.labels(*d) == engine.labels(*engine.find("dev-" + std::to_string(i))));
  }
}

TEST_CASE("issue 16/3: holes (forgotten devices) are left out of the file") {
  core::DeviceCopy copy;
  copy.entries.resize(3);
  copy.set_id(copy.entries[0], "a");
  copy.entries[0].state = core::State::Online;
  copy.entries[0].since = core::mono_ms(1'000);
  copy.set_id(copy.entries[2], "b");
  copy.entries[2].state = core::State::Offline;
  copy.entries[2].since = core::mono_ms(1'000);
  const WallAnchor anchor{
      std::chrono::system_clock::time_point{std::chrono::milliseconds{1'700'000'000'000}},
      core::mono_ms(2'000)};
  const auto loaded = decode_snapshot(encode_copy(copy, "", anchor), anchor);
  REQUIRE(loaded.status == LoadStatus::Ok);
  REQUIRE(loaded.snapshot.devices.size() == 2);
  CHECK(loaded.snapshot.devices[0].id == "a");
  CHECK(loaded.snapshot.devices[1].id == "b");
  CHECK(loaded.repairs.devices_dropped == 0);
}

TEST_CASE("issue 16/3: restore shares one label set among devices; changing one leaves the others") {
  std::vector<core::DeviceSnapshot> devices;
  for (int i = 0; i < 6; ++i) {
    core::DeviceSnapshot d;
    d.id = "d" + std::to_string(i);
    d.state = core::State::Online;
    d.since = core::mono_ms(1'000);
    d.labels = {{"fw", "1.2"}, {"site", i % 2 ? "north" : "south"}};
    devices.push_back(d);
  }
  // The same id twice with other labels (not from decode, which drops it): the set cached for
  // d0's labels must survive d0 moving to another one.
  devices.push_back(devices[0]);
  devices.back().labels = {{"site", "east"}};
  devices.push_back(devices[2]);
  core::Engine engine;
  engine.restore(devices, core::mono_ms(2'000));
  CHECK(engine.device_count() == 6);
  const auto labels = [&](const char* id) { return engine.labels(*engine.find(id)); };
  CHECK(labels("d0") == std::vector<core::Label>{{"fw", "1.2"}, {"site", "east"}});
  CHECK(labels("d2") == std::vector<core::Label>{{"fw", "1.2"}, {"site", "south"}});
  CHECK(labels("d4") == std::vector<core::Label>{{"fw", "1.2"}, {"site", "south"}});
  CHECK(labels("d5") == std::vector<core::Label>{{"fw", "1.2"}, {"site", "north"}});
  engine.set_label(*engine.find("d2"), "fw", "2.0");
  CHECK(labels("d2") == std::vector<core::Label>{{"fw", "2.0"}, {"site", "south"}});
  CHECK(labels("d4") == std::vector<core::Label>{{"fw", "1.2"}, {"site", "south"}});
}
