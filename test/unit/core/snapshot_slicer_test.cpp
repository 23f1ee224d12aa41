// core::SnapshotSlicer (issue 16 item 3): a snapshot copied a slice per batch is still the engine
// at one moment -- the moment the last step returned true. Simulated clock, no threads.
#include "presence/core/snapshot_slicer.h"
#include "presence/core/policy.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace presence::core;

namespace {

Event ev(EventKind kind, DeviceIndex device, std::int64_t at_ms) {
  Event e;
  e.kind = kind;
  e.device = device;
  e.at = mono_ms(at_ms);
  if (kind == EventKind::Disconnected) e.reason = DisconnectReason::LastWill;
  return e;
}

// n devices "d0".."d<n-1>", all online at t=1000, labelled site=s<i%3>.
struct Fleet {
  Engine engine;
  SnapshotSlicer slicer;
  explicit Fleet(std::size_t n) {
    engine.set_observer(&slicer);
    for (std::size_t i = 0; i < n; ++i) {
      const DeviceIndex d = engine.intern("d" + std::to_string(i));
      engine.set_label(d, "site", "s" + std::to_string(i % 3));
      engine.on_event(ev(EventKind::Connected, d, 1000));
    }
    engine.tick(mono_ms(1000));
    std::vector<Transition> drained;
    engine.drain(drained);
  }
  void change(DeviceIndex d, EventKind kind, std::int64_t at) {
    engine.on_event(ev(kind, d, at));
    engine.tick(mono_ms(at));
    std::vector<Transition> drained;
    engine.drain(drained);
  }
};

bool same(const std::vector<DeviceSnapshot>& a, const std::vector<DeviceSnapshot>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].id != b[i].id || a[i].state != b[i].state || a[i].since != b[i].since ||
        a[i].labels != b[i].labels)
      return false;
  return true;
}

const DeviceSnapshot* find(const std::vector<DeviceSnapshot>& v, const std::string& id) {
  for (const auto& d : v)
    if (d.id == id) return &d;
  return nullptr;
}

// A DecisionObserver that counts what reaches it through the slicer.
struct Counting : DecisionObserver {
  int transitions = 0, labels = 0, forgets = 0, ticks = 0;
  bool refuse_forget = false;
  void on_transition(const Transition&) override { ++transitions; }
  void on_label(DeviceIndex, std::string_view, std::string_view) override { ++labels; }
  void on_forget(DeviceIndex) override { ++forgets; }
  void on_tick(MonoTime) override { ++ticks; }
  bool may_forget(DeviceIndex) const override { return !refuse_forget; }
};

}  // namespace

TEST_CASE("a copy in slices of k devices takes ceil(n/k) steps and equals Engine::snapshot()") {
  Fleet f(10);
  f.slicer.begin();
  CHECK(f.slicer.active());
  CHECK_FALSE(f.slicer.step(f.engine, 4));  // 0..3
  CHECK_FALSE(f.slicer.step(f.engine, 4));  // 4..7
  CHECK(f.slicer.step(f.engine, 4));        // 8..9: complete
  CHECK(f.slicer.steps() == 3);
  const DeviceCopy copy = f.slicer.take();
  CHECK_FALSE(f.slicer.active());
  CHECK(copy.devices() == 10);
  // none + the 3 sites per step, shared by the devices of that step (a pool handle may name
  // another set by the next step, so sets are not matched across steps).
  CHECK(copy.label_sets.size() == 1 + 3 + 3 + 2);  // d8, d9: two sites
  CHECK(same(copy.to_snapshots(), f.engine.snapshot()));
  // Boundary: a budget of exactly n is one step; n - 1 is two.
  f.slicer.begin();
  CHECK(f.slicer.step(f.engine, 10));
  CHECK(f.slicer.take().label_sets.size() == 4);
  f.slicer.begin();
  CHECK_FALSE(f.slicer.step(f.engine, 9));
  CHECK(f.slicer.step(f.engine, 9));
}

TEST_CASE("a device changed before its slice is copied once, as it is then") {
  Fleet f(10);
  f.slicer.begin();
  CHECK_FALSE(f.slicer.step(f.engine, 5));  // 0..4 copied
  f.change(5, EventKind::Disconnected, 2000);  // index 5: the next slice's first device
  CHECK(f.slicer.step(f.engine, 5));           // 5..9: nothing to copy again
  CHECK(f.slicer.recopied() == 0);
  const auto copy = f.slicer.take().to_snapshots();
  CHECK(find(copy, "d5")->state == State::Suspect);
  CHECK(find(copy, "d5")->since == mono_ms(2000));
  CHECK(same(copy, f.engine.snapshot()));
}

TEST_CASE("a device changed after its slice is copied again: the copy is the engine at take()") {
  Fleet f(10);
  f.slicer.begin();
  CHECK_FALSE(f.slicer.step(f.engine, 5));     // 0..4 copied
  f.change(4, EventKind::Disconnected, 2000);  // index 4: the last device of the copied slice
  CHECK_FALSE(f.slicer.step(f.engine, 5));     // 5..9 copied; the budget is spent
  CHECK(f.slicer.step(f.engine, 5));           // d4 again
  CHECK(f.slicer.recopied() == 1);
  const auto copy = f.slicer.take().to_snapshots();
  CHECK(find(copy, "d4")->state == State::Suspect);
  CHECK(find(copy, "d4")->since == mono_ms(2000));
  CHECK(same(copy, f.engine.snapshot()));
}

TEST_CASE("the queue of changed devices shares the step's budget with the last slice") {
  Fleet f(10);
  f.slicer.begin();
  CHECK_FALSE(f.slicer.step(f.engine, 6));  // 0..5
  f.change(0, EventKind::Disconnected, 2000);
  CHECK(f.slicer.step(f.engine, 6));  // 6..9 (4) and d0 (1) fit in 6
  CHECK(f.slicer.recopied() == 1);
  CHECK(same(f.slicer.take().to_snapshots(), f.engine.snapshot()));
}

TEST_CASE("a device whose state changes twice after its slice is copied again once") {
  Fleet f(4);
  f.slicer.begin();
  CHECK_FALSE(f.slicer.step(f.engine, 2));
  f.change(1, EventKind::Disconnected, 2000);
  f.change(1, EventKind::Connected, 3000);
  CHECK(f.slicer.step(f.engine, 3));
  CHECK(f.slicer.recopied() == 1);
  CHECK(same(f.slicer.take().to_snapshots(), f.engine.snapshot()));
}

TEST_CASE("a label changed after its slice is copied again") {
  Fleet f(6);
  f.slicer.begin();
  CHECK_FALSE(f.slicer.step(f.engine, 3));
  f.engine.set_label(0, "site", "moved");
  f.engine.set_label(1, "site", "s1");  // unchanged: not announced, not copied again
  CHECK_FALSE(f.slicer.step(f.engine, 3));
  CHECK(f.slicer.step(f.engine, 3));
  CHECK(f.slicer.recopied() == 1);
  const auto copy = f.slicer.take().to_snapshots();
  REQUIRE(find(copy, "d0")->labels.size() == 1);
  CHECK(find(copy, "d0")->labels[0].second == "moved");
  CHECK(same(copy, f.engine.snapshot()));
}

TEST_CASE("devices interned during the copy are in it; a device forgotten after its slice is not") {
  Config c;
  c.forget_after = std::chrono::hours(1);
  Engine engine(c);
  SnapshotSlicer slicer;
  engine.set_observer(&slicer);
  for (int i = 0; i < 4; ++i) {
    const DeviceIndex d = engine.intern("d" + std::to_string(i));
    engine.on_event(ev(EventKind::Connected, d, 1000));
  }
  engine.on_event(ev(EventKind::Disconnected, 0, 2000));  // d0 goes, to be forgotten
  engine.tick(mono_ms(2000));
  std::vector<Transition> drained;
  engine.drain(drained);
  slicer.begin();
  CHECK_FALSE(slicer.step(engine, 2));  // d0, d1 copied (d0 suspect)
  const DeviceIndex d4 = engine.intern("d4");
  engine.on_event(ev(EventKind::Connected, d4, 3000));
  // Long past offline_grace and forget_after: d0 is forgotten (after its slice).
  engine.tick(mono_ms(2000 + 2 * 3600 * 1000));
  engine.drain(drained);
  CHECK_FALSE(engine.known(0));
  CHECK_FALSE(slicer.step(engine, 2));  // d2, d3
  CHECK(slicer.step(engine, 2));        // d4, then d0 again: a hole now
  const auto copy = slicer.take().to_snapshots();
  CHECK(find(copy, "d0") == nullptr);
  REQUIRE(find(copy, "d4") != nullptr);
  CHECK(find(copy, "d4")->state == State::Online);
  CHECK(same(copy, engine.snapshot()));
}

TEST_CASE("changes that outpace the budget: after kCatchUpSteps the rest is copied at once") {
  Fleet f(20);
  f.slicer.begin();
  CHECK_FALSE(f.slicer.step(f.engine, 10));  // 0..9
  // Every batch, three copied devices change (a label: no flap detector in the way) and the
  // budget past the end is 1: the queue never drains by itself.
  int n = 0;
  auto batch = [&] {
    ++n;
    for (DeviceIndex d = 0; d < 3; ++d) f.engine.set_label(d, "n", std::to_string(n));
  };
  batch();
  CHECK_FALSE(f.slicer.step(f.engine, 10));  // 10..19: the end, budget spent (step 1 past it)
  int steps_past_end = 1;
  bool done = false;
  while (!done) {
    batch();
    done = f.slicer.step(f.engine, 1);
    ++steps_past_end;
    REQUIRE(steps_past_end <= SnapshotSlicer::kCatchUpSteps + 1);
  }
  CHECK(steps_past_end == SnapshotSlicer::kCatchUpSteps + 1);
  CHECK(same(f.slicer.take().to_snapshots(), f.engine.snapshot()));
}

TEST_CASE("the slicer forwards every decision to the observer behind it") {
  Engine engine;
  Counting inner;
  SnapshotSlicer slicer(&inner);
  engine.set_observer(&slicer);
  const DeviceIndex d = engine.intern("a");
  engine.set_label(d, "k", "v");
  engine.on_event(ev(EventKind::Connected, d, 1000));
  engine.tick(mono_ms(1000));
  CHECK(inner.labels == 1);
  CHECK(inner.transitions == 1);
  CHECK(inner.ticks >= 1);
  inner.refuse_forget = true;
  CHECK_FALSE(slicer.may_forget(d));
  inner.refuse_forget = false;
  CHECK(slicer.may_forget(d));
  // Without an inner observer the slicer keeps the engine's defaults.
  SnapshotSlicer bare;
  CHECK(bare.may_forget(d));
}

TEST_CASE("begin() drops an unfinished copy; abandon() leaves the slicer idle") {
  Fleet f(6);
  f.slicer.begin();
  CHECK_FALSE(f.slicer.step(f.engine, 2));
  f.slicer.begin();
  CHECK(f.slicer.copied() == 0);
  CHECK_FALSE(f.slicer.step(f.engine, 4));
  CHECK(f.slicer.step(f.engine, 4));
  CHECK(f.slicer.take().devices() == 6);
  f.slicer.begin();
  f.slicer.abandon();
  CHECK_FALSE(f.slicer.active());
  CHECK_FALSE(f.slicer.step(f.engine, 10));
}

TEST_CASE("the policy's copy with index tokens, resolved from the device copy, is its text") {
  Engine engine;
  AlertPolicy policy(PolicyConfig{}, FleetConfig{},
                     [&engine](DeviceIndex d) { return std::string(engine.id_of(d)); });
  SnapshotSlicer slicer(&policy);
  engine.set_observer(&slicer);
  for (int i = 0; i < 8; ++i)
    engine.on_event(ev(EventKind::Connected, engine.intern("device-with-a-long-id-" + std::to_string(i)), 1000));
  engine.tick(mono_ms(1000));
  engine.on_event(ev(EventKind::Disconnected, 3, 2000));
  engine.on_event(ev(EventKind::Disconnected, 5, 2000));
  // Past offline_grace and alert_after: two device alerts firing.
  for (std::int64_t t = 2000; t <= 600'000; t += 1000) engine.tick(mono_ms(t));
  std::vector<AlertIntent> intents;
  engine.drain_alerts(intents);
  const std::string expected = to_text(policy.snapshot());
  REQUIRE(expected.find("device-with-a-long-id-3") != std::string::npos);

  slicer.begin();
  REQUIRE(slicer.step(engine, 100));
  PolicySnapshot tokens = policy.snapshot(&DeviceCopy::index_token);
  const DeviceCopy copy = slicer.take();
  CHECK(to_text(tokens).find("device-with-a-long-id-3") == std::string::npos);
  for_each_id(tokens, [&copy](std::string& id) { copy.resolve(id); });
  CHECK(to_text(tokens) == expected);
  // Not a token: kept. A token for an index without a device: empty.
  std::string plain = "dev-1";
  copy.resolve(plain);
  CHECK(plain == "dev-1");
  std::string missing = DeviceCopy::index_token(999);
  copy.resolve(missing);
  CHECK(missing.empty());
}
