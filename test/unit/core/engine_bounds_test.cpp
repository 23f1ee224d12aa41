// Engine bounds against hostile input (issue 19 items 3 and 9): distinct label keys and
// key=value pairs (Config::max_label_keys, max_label_values), label-set memory under churn, and
// the device cap (Config::max_devices). Exact boundaries: N-1, N, N+1.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "presence/core/engine.h"

using namespace presence::core;

namespace {

// Counts what the fleet/policy would hear.
struct LabelObserver : DecisionObserver {
  std::size_t labels = 0;
  void on_label(DeviceIndex, std::string_view, std::string_view) override { ++labels; }
};

}  // namespace

TEST_CASE("label keys: the max_label_keys-th distinct key is admitted, the next refused") {
  Config c;
  c.max_label_keys = 3;
  Engine engine(c);
  LabelObserver obs;
  engine.set_observer(&obs);
  const DeviceIndex a = engine.intern("a");
  const DeviceIndex b = engine.intern("b");
  engine.set_label(a, "k1", "v");
  engine.set_label(a, "k2", "v");
  engine.set_label(b, "k3", "v");  // N = 3: admitted
  CHECK(engine.counters().label_keys_refused == 0);
  engine.set_label(b, "k4", "v");  // N + 1: refused, b keeps k3
  CHECK(engine.counters().label_keys_refused == 1);
  CHECK(engine.labels(b) == std::vector<Label>{{"k3", "v"}});
  CHECK(obs.labels == 3);  // the refused label never reached the fleet
  // Known keys keep working, on any device, and removing never counts as a refusal.
  engine.set_label(b, "k1", "w");
  engine.set_label(a, "k4", "");
  engine.set_label(a, "k2", "");
  CHECK(engine.labels(b) == std::vector<Label>{{"k1", "w"}, {"k3", "v"}});
  CHECK(engine.labels(a) == std::vector<Label>{{"k1", "v"}});
  CHECK(engine.counters().label_keys_refused == 1);
}

TEST_CASE("label values: at most max_label_values distinct key=value pairs") {
  Config c;
  c.max_label_values = 2;
  Engine engine(c);
  const DeviceIndex a = engine.intern("a");
  engine.set_label(a, "fw", "1.0");
  engine.set_label(a, "fw", "1.1");  // N = 2
  CHECK(engine.counters().label_values_refused == 0);
  engine.set_label(a, "fw", "1.2");  // N + 1: refused, a keeps 1.1
  CHECK(engine.counters().label_values_refused == 1);
  CHECK(engine.labels(a) == std::vector<Label>{{"fw", "1.1"}});
  engine.set_label(a, "fw", "1.0");  // a pair seen before is not new
  CHECK(engine.labels(a) == std::vector<Label>{{"fw", "1.0"}});
  // The same value under another key is another pair.
  engine.set_label(a, "site", "1.0");
  CHECK(engine.counters().label_values_refused == 2);
}

// Issue 19 item 3: births whose label keys changed per message grew RSS superlinearly (3.3 GB).
TEST_CASE("label churn: memory is bounded by the caps and the devices, not by the messages") {
  Config c;
  c.max_label_keys = 64;
  c.max_label_values = 3000;
  Engine engine(c);
  std::vector<DeviceIndex> devices;
  for (int d = 0; d < 10; ++d) devices.push_back(engine.intern("dev-" + std::to_string(d)));
  const std::size_t empty = engine.memory_bytes();
  auto churn = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      const DeviceIndex d = devices[static_cast<std::size_t>(i) % devices.size()];
      // A new key per message (as the probe did), and a value that changes too.
      engine.set_label(d, "key-" + std::to_string(i), "v" + std::to_string(i % 7));
      engine.set_label(d, "fw", std::to_string(i % 5000));
    }
  };
  churn(0, 20000);
  const std::size_t after_20k = engine.memory_bytes() - empty;
  churn(20000, 184000);  // the message count
  const std::size_t after_184k = engine.memory_bytes() - empty;
  MESSAGE("label memory: " << after_20k << " bytes after 20,000 messages, " << after_184k
                           << " after 184,000");
  // Bounded: 64 keys, 3,000 pairs of small strings, and at most one set per device.
  CHECK(after_184k < 4 * 1024 * 1024);
  CHECK(after_184k <= after_20k * 2);  // flat, not growing with the messages
  const auto counters = engine.counters();
  CHECK(counters.label_keys_refused > 0);
  CHECK(counters.label_values_refused > 0);
  for (const auto d : devices) CHECK(engine.labels(d).size() <= 64);
}

TEST_CASE("label sets are shared and freed again: firmware churn across 1,000 devices") {
  Engine engine;
  for (int d = 0; d < 1000; ++d) {
    const DeviceIndex i = engine.intern("d" + std::to_string(d));
    engine.set_label(i, "site", "berlin");
    engine.set_label(i, "model", "m1");
  }
  const std::size_t before = engine.memory_bytes();
  // Every device moves to a new firmware and back: sets are created and freed again.
  for (int round = 0; round < 50; ++round)
    for (int d = 0; d < 1000; ++d) {
      const DeviceIndex i = *engine.find("d" + std::to_string(d));
      engine.set_label(i, "fw", "r" + std::to_string(round));
    }
  for (int d = 0; d < 1000; ++d) engine.set_label(*engine.find("d" + std::to_string(d)), "fw", "");
  CHECK(engine.memory_bytes() <= before + 64 * 1024);  // 50 pairs, a few freed set slots
  CHECK(engine.labels(*engine.find("d7")) ==
        std::vector<Label>{{"model", "m1"}, {"site", "berlin"}});
}

TEST_CASE("max_devices: the N-th new id is admitted, the next refused, known ids still work") {
  Config c;
  c.max_devices = 3;
  Engine engine(c);
  CHECK(engine.intern("a") != kNoDevice);
  CHECK(engine.intern("b") != kNoDevice);
  CHECK(engine.intern("c") != kNoDevice);  // N
  CHECK(engine.counters().devices_refused == 0);
  CHECK(engine.intern("d") == kNoDevice);  // N + 1
  CHECK(engine.counters().devices_refused == 1);
  CHECK(engine.intern("b") == *engine.find("b"));
  CHECK(engine.size() == 3);
  CHECK(engine.counters().devices_refused == 1);
}

TEST_CASE("max_devices 0 means no cap") {
  Engine engine;
  for (int i = 0; i < 1000; ++i) CHECK(engine.intern("id-" + std::to_string(i)) != kNoDevice);
  CHECK(engine.counters().devices_refused == 0);
}
