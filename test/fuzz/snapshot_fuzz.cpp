// Fuzz target: the state snapshot (presence/store/snapshot.*) and the alert policy's snapshot
// text inside it (core::AlertPolicy::deserialize), restored the way presenced restores them at
// start (presence/app/alerting.cpp): Engine::restore, AlertPolicy::resync/restore, then time runs.
// A snapshot is a file on disk a crash, a full disk or an operator can damage (incident 004).
//
// Input: a whole snapshot file when it starts with the magic "PRSNAPSH"; otherwise the payload of
// its one record, which the harness frames with a valid header and checksum so the mutator works
// on the content rather than on CRCs.
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "presence/core/engine.h"
#include "presence/core/policy.h"
#include "presence/store/record.h"
#include "presence/store/snapshot.h"
#include "test/fuzz/fuzz.h"

namespace {

using namespace presence;

constexpr std::int64_t kNowMs = 5'000'000;

store::WallAnchor anchor() {
  store::WallAnchor a;
  a.wall = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  a.mono = core::mono_ms(kNowMs);
  return a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string file;
  if (input.substr(0, 8) == "PRSNAPSH") {
    file = input;
  } else {
    file = std::string("PRSNAPSH", 8);
    file += std::string("\x01\x00\x00\x00", 4);  // kSnapshotVersion, little-endian
    store::append_record(file, input);
  }

  const auto loaded = store::decode_snapshot(file, anchor());
  if (loaded.status != store::LoadStatus::Ok) {
    if (loaded.error.empty()) std::abort();  // a refusal always says why
    return 0;
  }

  const auto now = core::mono_ms(kNowMs);
  core::Engine engine;
  core::AlertPolicy policy({}, {}, [&engine](core::DeviceIndex d) {
    return std::string(engine.id_of(d));
  });
  engine.set_observer(&policy);
  engine.restore(loaded.snapshot.devices, now);
  policy.resync(engine);
  core::PolicySnapshot snap;
  std::string error;
  if (core::AlertPolicy::deserialize(loaded.snapshot.incidents, snap, error)) {
    policy.restore(snap, now, [&engine](std::string_view id) { return engine.intern(id); });
  } else if (error.empty()) {
    std::abort();
  }

  // Let the restored state live: restart grace ends, timers fire, alerts drain, and the whole
  // thing is saved again (what the next snapshot would write).
  std::vector<core::Transition> transitions;
  std::vector<core::AlertIntent> alerts;
  for (const std::int64_t step : {1'000, 60'000, 600'000, 3'600'000}) {
    engine.tick(core::mono_ms(kNowMs + step));
    engine.flush();
    transitions.clear();
    engine.drain(transitions);
    alerts.clear();
    policy.drain_alerts(alerts);
  }
  const std::string again = policy.serialize();
  core::PolicySnapshot round;
  if (!core::AlertPolicy::deserialize(again, round, error)) std::abort();  // we must read our own
  return 0;
}
