// Sliced snapshots through app::Alerting (issue 16 item 3), driven like server::Loop drives it --
// the engine step then Alerting::after_batch, with a simulated clock -- and the real saver thread
// and file. What the issue asks of them: a crash mid-slice loses nothing beyond the previous
// snapshot (the file is the previous snapshot, whole); SIGTERM mid-slice writes a complete final
// snapshot that is current (a device changed after its slice, one before); the pause metric is
// the longest slice of the last snapshot.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "presence/api/alert_metrics.h"
#include "presence/app/alerting.h"
#include "presence/store/snapshot.h"
#include "test/support/process.h"

using namespace presence;
using namespace std::chrono_literals;

namespace {

constexpr int kDevices = 5000;
constexpr std::size_t kSlice = 1000;  // 5 slices per snapshot

core::Event ev(core::EventKind kind, core::DeviceIndex d, core::MonoTime at) {
  core::Event e;
  e.kind = kind;
  e.device = d;
  e.at = at;
  e.source = core::Source::Status;
  if (kind == core::EventKind::Disconnected) e.reason = core::DisconnectReason::LastWill;
  return e;
}

struct Service {
  test::TempDir dir;
  app::Config config;
  std::unique_ptr<app::Alerting> alerting;
  core::Engine engine;
  core::MonoTime now = core::mono_ms(1'000);

  Service() {
    config.store.dir = dir.path();
    config.store.snapshot_interval = 30s;
    alerting = std::make_unique<app::Alerting>(config, [](std::string_view) {});
    alerting->set_snapshot_slice_devices(kSlice);
    REQUIRE(alerting->start().ok());
    alerting->on_start(engine, now);
    for (int i = 0; i < kDevices; ++i)
      engine.on_event(ev(core::EventKind::Connected, engine.intern("d" + std::to_string(i)), now));
    batch(now);
  }
  // One batch as server::Loop runs it: the engine step, then the "alerts" step.
  void batch(core::MonoTime at) {
    now = at;
    engine.tick(now);
    std::vector<core::Transition> drained;
    engine.drain(drained);
    alerting->after_batch(engine, now);
  }
  void change(int device, core::EventKind kind, core::MonoTime at) {
    engine.on_event(ev(kind, static_cast<core::DeviceIndex>(device), at));
  }
  std::uint64_t saves() const { return alerting->metrics().snapshot.saves; }
  // The file as a restart would read it. The anchor's wall time is an hour ahead so that no
  // `since` is clamped to "now": times are compared as differences.
  store::Snapshot file() const {
    store::SnapshotStore store(store_path(), [](std::string_view) {});
    const store::WallAnchor later{std::chrono::system_clock::now() + 1h, core::mono_ms(0)};
    auto loaded = store.load(later);
    REQUIRE(loaded.status == store::LoadStatus::Ok);
    return loaded.snapshot;
  }
  std::string store_path() const { return app::snapshot_path(config); }
};

const core::DeviceSnapshot& device(const store::Snapshot& s, const std::string& id) {
  for (const auto& d : s.devices)
    if (d.id == id) return d;
  FAIL("no device " << id);
  return s.devices.front();
}

}  // namespace

TEST_CASE("a snapshot is copied one slice per batch and written when the last slice is taken") {
  Service s;
  // Due at start + snapshot_interval: one slice per batch, the fifth completes it.
  for (int k = 0; k < 4; ++k) s.batch(core::mono_ms(31'000 + 100 * k));
  CHECK(s.saves() == 0);
  CHECK(s.alerting->metrics().snapshot_slices == 0);
  s.batch(core::mono_ms(31'400));
  REQUIRE(test::wait_for([&] { return s.saves() == 1; }, 10s));
  const auto m = s.alerting->metrics();
  CHECK(m.snapshot_slices == 5);
  CHECK(m.snapshot_pause_us > 0);
  CHECK(m.snapshot_pause_us <= m.snapshot_copy_us);
  CHECK(m.snapshot_pause_max_us == m.snapshot_pause_us);
  CHECK(s.file().devices.size() == kDevices);
  const std::string text = api::render_prometheus(m);
  CHECK(text.find("presence_snapshot_pause_seconds ") != std::string::npos);
  CHECK(text.find("presence_snapshot_pause_max_seconds ") != std::string::npos);
  CHECK(text.find("presence_snapshot_copy_seconds ") != std::string::npos);
  CHECK(text.find("presence_snapshot_slices 5") != std::string::npos);
  s.alerting->stop();
}

TEST_CASE("a crash mid-slice loses nothing beyond the previous snapshot; SIGTERM mid-slice writes "
          "a whole, current one") {
  Service s;
  for (int k = 0; k < 5; ++k) s.batch(core::mono_ms(31'000 + 100 * k));
  REQUIRE(test::wait_for([&] { return s.saves() == 1; }, 10s));

  // d1 goes before the next snapshot; the next one starts at 61 s (start + 2 intervals).
  s.change(1, core::EventKind::Disconnected, core::mono_ms(40'000));
  s.batch(core::mono_ms(40'000));
  s.batch(core::mono_ms(61'000));  // slice 1: d0..d999
  s.batch(core::mono_ms(61'100));  // slice 2: d1000..d1999
  // A crash now: the file is the previous snapshot, whole (every device, d1 still online).
  {
    const auto before = s.file();
    CHECK(before.devices.size() == kDevices);
    CHECK(device(before, "d1").state == core::State::Online);
    CHECK(s.saves() == 1);
  }
  // Changed after its slice (d0, d1) and before its slice (d4999), then SIGTERM.
  s.change(0, core::EventKind::Disconnected, core::mono_ms(61'200));
  s.change(1, core::EventKind::Connected, core::mono_ms(61'200));
  s.change(4999, core::EventKind::Disconnected, core::mono_ms(61'200));
  s.engine.tick(core::mono_ms(61'200));
  std::vector<core::Transition> drained;
  s.engine.drain(drained);
  s.alerting->on_stop(s.engine, core::mono_ms(61'200));
  s.alerting->stop();  // waits (bounded) for the saver
  CHECK(s.saves() == 2);
  const auto last = s.file();
  CHECK(last.devices.size() == kDevices);
  CHECK(device(last, "d0").state == core::State::Suspect);
  CHECK(device(last, "d1").state == core::State::Online);
  CHECK(device(last, "d4999").state == core::State::Suspect);
  CHECK(device(last, "d2").state == core::State::Online);
  // `since` is the moment of each change: 60.2 s after the fleet connected.
  CHECK(device(last, "d0").since - device(last, "d2").since == 60'200ms);
  CHECK(device(last, "d1").since - device(last, "d2").since == 60'200ms);
}

TEST_CASE("SIGTERM with no copy under way takes one at once, whole") {
  Service s;
  s.change(7, core::EventKind::Disconnected, core::mono_ms(2'000));
  s.batch(core::mono_ms(2'000));
  s.alerting->on_stop(s.engine, core::mono_ms(2'000));
  s.alerting->stop();
  const auto last = s.file();
  CHECK(last.devices.size() == kDevices);
  CHECK(device(last, "d7").state == core::State::Suspect);
}
