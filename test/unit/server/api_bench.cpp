// Benchmark (JSON lines, never asserted): what one /v1 query costs the engine thread at 1 M
// devices. Every query runs on the engine thread between batches, so its time is ingest latency.
//   build/test/unit/api/presence-api-bench [devices]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "presence/core/engine.h"
#include "presence/core/policy.h"
#include "presence/server/api_backend.h"

namespace {

using namespace presence;
using Clock = std::chrono::steady_clock;

void line(const char* name, double value, const char* unit) {
  std::printf("{\"name\":\"%s\",\"value\":%.3f,\"unit\":\"%s\"}\n", name, value, unit);
}

template <typename F>
double ms_of(F&& f, int reps = 5) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1'000'000;
  core::Engine engine;
  core::AlertPolicy policy({}, {},
                           [&](core::DeviceIndex d) { return std::string(engine.id_of(d)); });
  engine.set_observer(&policy);
  engine.reserve(n);
  ingest::WallAnchor anchor;
  server::ApiQueries q({}, anchor);
  std::vector<core::Transition> ts;
  const char* sites[] = {"berlin", "paris", "lyon", "oslo"};
  std::int64_t now = 1000;
  for (std::size_t i = 0; i < n; ++i) {
    const auto d = engine.intern("device-" + std::to_string(i));
    engine.set_label(d, "site", sites[i % 4]);
    engine.set_label(d, "fw", i % 100 == 0 ? "3.9.0" : "3.8.0");
    core::Event e;
    e.kind = core::EventKind::Connected;
    e.device = d;
    e.at = core::mono_ms(now);
    engine.on_event(e);
  }
  engine.flush();
  engine.drain(ts);
  q.on_batch(engine, ts, core::mono_ms(now));  // fills the ring (last 65536 transitions)
  line("api_devices", static_cast<double>(n), "devices");

  api::DeviceQuery page;
  line("api_devices_page_100_ms", ms_of([&] { q.devices(engine, &policy, page); }), "ms");
  api::DeviceQuery rare;
  rare.state = "offline";  // nothing matches: the full scan budget is spent
  line("api_devices_rare_state_scan_budget_ms", ms_of([&] { q.devices(engine, &policy, rare); }),
       "ms");
  api::DeviceQuery label;
  label.labels = {{"fw", "3.9.0"}};  // 1 %: 100 matches need ~10 000 devices
  line("api_devices_label_1pct_page_ms", ms_of([&] { q.devices(engine, &policy, label); }), "ms");
  api::DeviceQuery walk;
  walk.limit = 1000;
  line("api_devices_full_walk_limit_1000_ms",
       ms_of(
           [&] {
             api::DeviceQuery w = walk;
             while (true) {
               auto r = q.devices(engine, &policy, w);
               if (!r.value.next) break;
               w.cursor = *r.value.next;
             }
           },
           1),
       "ms");
  line("api_device_detail_ms",
       ms_of([&] { q.device(engine, &policy, "device-" + std::to_string(n - 1)); }), "ms");
  line("api_fleet_request_ms", ms_of([&] { q.fleet(engine, core::mono_ms(now), true, &policy); }),
       "ms");
  // Segment pass: steps of scan_per_batch devices, one per batch.
  int steps = 0;
  double worst = 0, total = 0;
  q.fleet(engine, core::mono_ms(now), true, &policy);
  for (;;) {
    ++now;
    const auto t0 = Clock::now();
    q.on_batch(engine, {}, core::mono_ms(now), &policy);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    worst = std::max(worst, ms);
    total += ms;
    ++steps;
    if (!q.fleet(engine, core::mono_ms(now), true, &policy).value.segments.empty()) break;
  }
  line("api_segment_pass_steps", steps, "batches");
  line("api_segment_step_worst_ms", worst, "ms");
  line("api_segment_pass_total_ms", total, "ms");
  return 0;
}
