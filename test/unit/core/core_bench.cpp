// Rough numbers for the core alone (not a test; presence-bench in presence/tools/bench is the real
// benchmark). Prints JSON lines {"name":..,"value":..,"unit":..} (HELPERS.md: performance is
// measured in benchmark programs, never asserted in tests).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <ctime>
#include <vector>

#include "presence/core/engine.h"

using namespace presence::core;

namespace {
// CPU time of this process: the build machine is shared, wall time would measure the neighbours.
struct CpuClock {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<CpuClock, duration>;
  static time_point now() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return time_point(duration(ts.tv_sec * 1000000000LL + ts.tv_nsec));
  }
};
void line(const char* name, double value, const char* unit) {
  std::printf("{\"name\":\"%s\",\"value\":%.2f,\"unit\":\"%s\"}\n", name, value, unit);
}
long rss_kb() {
  long kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char buf[256];
    while (std::fgets(buf, sizeof buf, f)) {
      if (std::sscanf(buf, "VmRSS: %ld kB", &kb) == 1) break;
    }
    std::fclose(f);
  }
  return kb;
}
}  // namespace

int main(int argc, char** argv) {
  const std::size_t devices = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000000;
  const std::size_t events = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 10000000;
  using clock = CpuClock;
  const long rss0 = rss_kb();
  Engine engine;
  std::vector<DeviceIndex> ids(devices);
  std::size_t id_bytes = 0;
  auto t0 = clock::now();
  {
    char buf[32];
    for (std::size_t i = 0; i < devices; ++i) {
      const int n = std::snprintf(buf, sizeof buf, "device-%08zu", i);
      id_bytes += static_cast<std::size_t>(n);
      ids[i] = engine.intern(std::string_view(buf, static_cast<std::size_t>(n)));
    }
  }
  auto t1 = clock::now();
  line("core_intern_rate", static_cast<double>(devices) / std::chrono::duration<double>(t1 - t0).count(), "ids/s");
  {
    // Looking up known ids in random order (what ingest does per message).
    std::mt19937_64 pick(7);
    char buf[32];
    std::size_t found = 0;
    const std::size_t lookups = 2000000;
    t0 = clock::now();
    for (std::size_t i = 0; i < lookups; ++i) {
      const int n = std::snprintf(buf, sizeof buf, "device-%08zu", static_cast<std::size_t>(pick() % devices));
      found += engine.intern(std::string_view(buf, static_cast<std::size_t>(n))) != kNoDevice;
    }
    t1 = clock::now();
    line("core_lookup_rate", static_cast<double>(found) / std::chrono::duration<double>(t1 - t0).count(), "ids/s");
  }
  // Every device connects and heartbeats every ~60 s; some disconnect and come back.
  std::mt19937_64 rng(1);
  std::int64_t now = 0;
  for (std::size_t i = 0; i < devices; ++i) {
    Event e;
    e.kind = EventKind::Connected;
    e.device = ids[i];
    e.session = 1;
    e.at = mono_ms(now);
    engine.on_event(e);
  }
  std::vector<Transition> out;
  engine.drain(out);
  out.clear();
  std::vector<Event> evs(events);
  for (std::size_t n = 0; n < events; ++n) {
    Event& e = evs[n];
    e.device = ids[rng() % devices];
    const auto r = rng() % 100;
    e.kind = r < 96 ? EventKind::Heartbeat : (r < 98 ? EventKind::Disconnected : EventKind::Connected);
    e.reason = DisconnectReason::LastWill;
    if (n % 100 == 0) ++now;  // 100 events per ms: 100k events/s of simulated fleet
    e.at = mono_ms(now);
  }
  t0 = clock::now();
  const bool batched = argc <= 3 || std::string(argv[3]) != "single";
  for (std::size_t n = 0; n < events; n += 4096) {
    const std::size_t k = std::min<std::size_t>(4096, events - n);
    if (batched) {
      engine.on_events(&evs[n], k);
    } else {
      for (std::size_t j = 0; j < k; ++j) engine.on_event(evs[n + j]);
    }
    engine.drain(out);
    out.clear();
  }
  t1 = clock::now();
  const double secs = std::chrono::duration<double>(t1 - t0).count();
  line(batched ? "core_event_rate_batched" : "core_event_rate_single", static_cast<double>(events) / secs, "events/s");
  const long rss1 = rss_kb();
  line("core_bytes_per_device_structures", static_cast<double>(engine.memory_bytes()) / static_cast<double>(devices), "B/device");
  line("core_bytes_per_device_structures_minus_id_bytes",
       static_cast<double>(engine.memory_bytes() - id_bytes) / static_cast<double>(devices), "B/device");
  line("core_rss_per_device_incl_event_buffer",
       static_cast<double>(rss1 - rss0) * 1024.0 / static_cast<double>(devices), "B/device");
  // Silence: every heartbeating device times out, then goes offline (timers firing in bulk).
  {
    const auto fired0 = engine.counters().timers_fired;
    t0 = clock::now();
    engine.tick(mono_ms(now + 3600 * 1000));
    engine.drain(out);
    t1 = clock::now();
    const auto fired = engine.counters().timers_fired - fired0;
    line("core_timer_fire_rate", static_cast<double>(fired) / std::chrono::duration<double>(t1 - t0).count(), "timers/s");
    line("core_transitions_in_silence", static_cast<double>(out.size()), "transitions");
    out.clear();
    out.shrink_to_fit();
  }
  // Restart grace sweep over every device.
  {
    now += 3600 * 1000;
    Event e;
    e.kind = EventKind::IngestLost;
    e.at = mono_ms(now);
    engine.on_event(e);
    e.kind = EventKind::IngestRestored;
    e.at = mono_ms(now + 1000);
    engine.on_event(e);
    t0 = clock::now();
    engine.tick(mono_ms(now + 1000 + 3600 * 1000));
    t1 = clock::now();
    line("core_restart_grace_sweep", std::chrono::duration<double>(t1 - t0).count() * 1000, "ms");
  }
  const auto c = engine.counts();
  line("core_online", static_cast<double>(c[static_cast<std::size_t>(State::Online)]), "devices");
  line("core_offline", static_cast<double>(c[static_cast<std::size_t>(State::Offline)]), "devices");
  return 0;
}
