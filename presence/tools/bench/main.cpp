// presence-bench: core throughput and memory on a synthetic fleet (issue 2, docs/benchmarks.md).
//
// The fleet: N devices, heartbeat intervals 10 s / 60 s / 5 min (30/50/20 %) with +-10 % jitter,
// a few disconnects (short blips inside offline_grace, real outages, some devices gone for good),
// and a few flapping devices. Deterministic for a given --seed.
//
// Events are generated one simulated second at a time into a reused buffer (a calendar queue
// keyed by second, O(1) per event) and only the engine calls are timed: on_events for the second's
// batch (or on_event per event with --per-event), then one tick and one drain per simulated
// second, as the service does. Generation is timed
// separately. Output: JSON lines {"name":..,"value":..,"unit":..}; nothing here asserts speed.
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "presence/core/engine.h"

namespace {

using presence::core::DeviceIndex;
using presence::core::DisconnectReason;
using presence::core::Engine;
using presence::core::Event;
using presence::core::EventKind;
using presence::core::mono_ms;
using presence::core::Source;
using presence::core::Transition;

struct Options {
  std::uint64_t devices = 1'000'000;
  std::uint64_t seconds = 600;
  std::uint64_t seed = 1;
  bool reserve = false;
  bool per_event = false;
};

// splitmix64: tiny, fast, deterministic across platforms (std distributions are not).
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [lo, hi].
  std::uint32_t range(std::uint32_t lo, std::uint32_t hi) {
    return lo + static_cast<std::uint32_t>(next() % (static_cast<std::uint64_t>(hi - lo) + 1));
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

std::size_t rss_bytes() {
  // statm: size resident shared text lib data dt (pages)
  std::ifstream f("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// CPU time of this thread: the machine running the bench may be shared, and wall time would
// then count other processes' time slices as engine time. Both are reported.
std::chrono::nanoseconds thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

std::size_t heap_bytes() { return mallinfo2().uordblks + mallinfo2().hblkhd; }

void metric(const char* name, double value, const char* unit) {
  std::printf("{\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"}\n", name, value, unit);
}
void metric_int(const char* name, std::uint64_t value, const char* unit) {
  std::printf("{\"name\":\"%s\",\"value\":%" PRIu64 ",\"unit\":\"%s\"}\n", name, value, unit);
}

enum class Mode : std::uint8_t { Up, Down, Gone };

struct Device {
  std::uint32_t next_ms = 0;   // time of this device's next event
  std::uint32_t interval_ms = 0;
  std::uint32_t session = 1;
  Mode mode = Mode::Up;
  bool flapper = false;
};

// Calendar queue: one bucket per simulated second, kWindow seconds deep. Every delay is between
// 1 s and kWindow - 1 s, so a device always lands in a later second than the one being emitted.
constexpr std::uint32_t kWindow = 400;

// Ids look like "site-0123/dev-00456789": 22 bytes, like a real tenant/site/device naming scheme.
constexpr std::size_t kIdBytes = 22;

class Fleet {
 public:
  Fleet(const Options& o) : rng_{o.seed}, devices_(o.devices), buckets_(kWindow) {
    for (auto& b : buckets_) b.reserve(o.devices / 60 + 16);
    for (std::size_t i = 0; i < devices_.size(); ++i) {
      Device& d = devices_[i];
      const double u = rng_.unit();
      d.interval_ms = u < 0.3 ? 10'000 : u < 0.8 ? 60'000 : 300'000;
      // 0.05 % flap (a handful at 10k, 500 at 1M): enough for the flap detector to do work.
      d.flapper = rng_.unit() < 0.0005;
      schedule(static_cast<DeviceIndex>(i), rng_.range(1000, d.interval_ms));
    }
  }

  // Appends the events of simulated second `sec` to out (unsorted).
  void emit_second(std::uint32_t sec, std::vector<Event>& out) {
    std::vector<DeviceIndex>& bucket = buckets_[sec % kWindow];
    scratch_.swap(bucket);
    bucket.clear();
    for (DeviceIndex i : scratch_) step(i, out);
    scratch_.clear();
  }

  std::size_t generator_bytes() const {
    std::size_t b = devices_.capacity() * sizeof(Device);
    for (const auto& v : buckets_) b += v.capacity() * sizeof(DeviceIndex);
    return b;
  }

 private:
  void schedule(DeviceIndex i, std::uint32_t at_ms) {
    devices_[i].next_ms = at_ms;
    buckets_[(at_ms / 1000) % kWindow].push_back(i);
  }

  std::uint32_t jittered(std::uint32_t interval_ms) {
    return rng_.range(interval_ms - interval_ms / 10, interval_ms + interval_ms / 10);
  }

  void step(DeviceIndex i, std::vector<Event>& out) {
    Device& d = devices_[i];
    const std::uint32_t now = d.next_ms;
    Event ev;
    ev.device = i;
    ev.at = mono_ms(now);
    ev.source = Source::Heartbeat;
    if (d.mode == Mode::Down) {
      ev.kind = EventKind::Connected;
      ev.source = Source::BrokerExt;
      ev.session = ++d.session;
      d.mode = Mode::Up;
      schedule(i, now + (d.flapper ? rng_.range(2000, 10'000) : jittered(d.interval_ms)));
    } else if (d.flapper ||
               rng_.unit() < 0.02 * d.interval_ms / 600'000.0) {  // ~2 % of the fleet / 10 min
      ev.kind = EventKind::Disconnected;
      ev.source = Source::BrokerExt;
      ev.session = d.session;
      const double r = rng_.unit();
      ev.reason = r < 0.5   ? DisconnectReason::LastWill
                  : r < 0.8 ? DisconnectReason::KeepaliveTimeout
                            : DisconnectReason::Graceful;
      d.mode = Mode::Down;
      const double how_long = rng_.unit();
      if (d.flapper) {
        schedule(i, now + rng_.range(2000, 10'000));
      } else if (how_long < 0.80) {
        schedule(i, now + rng_.range(2000, 20'000));  // a blip: back within offline_grace
      } else if (how_long < 0.95) {
        schedule(i, now + rng_.range(40'000, 250'000));  // a real outage, then back
      } else {
        d.mode = Mode::Gone;  // never comes back in this run
      }
    } else {
      ev.kind = EventKind::Heartbeat;
      schedule(i, now + jittered(d.interval_ms));
    }
    out.push_back(ev);
  }

  Rng rng_;
  std::vector<Device> devices_;
  std::vector<std::vector<DeviceIndex>> buckets_;
  std::vector<DeviceIndex> scratch_;
};

bool parse_u64(const char* s, std::uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return false;
  out = v;
  return true;
}

int usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: presence-bench [--devices N] [--seconds S] [--seed X]\n"
               "  --devices N   fleet size (default 1000000)\n"
               "  --seconds S   simulated duration after the initial connect (default 600)\n"
               "  --seed X      deterministic fleet (default 1)\n"
               "  --reserve     call Engine::reserve(N) first (no growth while interning)\n"
               "  --per-event   feed with on_event one by one instead of on_events per second\n"
               "Prints JSON lines {\"name\":..,\"value\":..,\"unit\":..}; see docs/benchmarks.md.\n");
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") return usage(0);
    if (a == "--reserve" || a == "--per-event") {
      (a == "--reserve" ? o.reserve : o.per_event) = true;
      continue;
    }
    std::uint64_t* target = a == "--devices" ? &o.devices
                            : a == "--seconds" ? &o.seconds
                            : a == "--seed"    ? &o.seed
                                               : nullptr;
    if (target == nullptr || i + 1 >= argc || !parse_u64(argv[i + 1], *target)) {
      std::fprintf(stderr, "presence-bench: bad argument '%s'\n", argv[i]);
      return usage(2);
    }
    ++i;
  }
  if (o.devices == 0 || o.devices > 50'000'000 || o.seconds == 0 || o.seconds > 3'000'000) {
    std::fprintf(stderr, "presence-bench: --devices must be 1..50000000, --seconds 1..3000000\n");
    return 2;
  }
  using Clock = std::chrono::steady_clock;
  const auto secs = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };

  // Generator state first, so the baseline below already contains it.
  Fleet fleet(o);
  std::vector<Event> chunk;
  chunk.reserve(o.devices / 8 + 1024);
  std::vector<Transition> transitions;
  transitions.reserve(4096);

  // Memory: RSS (and live heap) growth across creating the engine, interning every id and
  // feeding every device its first event (a connect). Decisions are drained every 4096 events
  // into a reused buffer, so neither the engine's decision buffer nor ours grows with N.
  const std::size_t gen0 = fleet.generator_bytes();
  const std::size_t rss0 = rss_bytes();
  const std::size_t heap0 = heap_bytes();
  Engine engine;
  if (o.reserve) engine.reserve(o.devices, o.devices * kIdBytes);
  std::uint64_t id_bytes = 0;
  std::uint64_t transition_count = 0;
  const auto setup_start = Clock::now();
  {
    char id[64];
    Event ev;
    ev.kind = EventKind::Connected;
    ev.source = Source::BrokerExt;
    ev.session = 1;
    ev.at = mono_ms(0);
    for (std::uint64_t i = 0; i < o.devices; ++i) {
      const int n = std::snprintf(id, sizeof id, "site-%04" PRIu64 "/dev-%08" PRIu64, i % 1000, i);
      id_bytes += static_cast<std::uint64_t>(n);
      ev.device = engine.intern(std::string_view(id, static_cast<std::size_t>(n)));
      engine.on_event(ev);
      if ((i & 4095) == 4095) {
        engine.drain(transitions);
        transition_count += transitions.size();
        transitions.clear();
      }
    }
    engine.drain(transitions);
    transition_count += transitions.size();
    transitions.clear();
  }
  const double setup_s = secs(Clock::now() - setup_start);
  const std::size_t rss1 = rss_bytes();
  const std::size_t heap1 = heap_bytes();

  // Throughput.
  Clock::duration engine_time{};
  std::chrono::nanoseconds engine_cpu{};
  Clock::duration gen_time{};
  std::uint64_t events = 0;
  // ns/event of each simulated second: the median is robust to the bursts of interference
  // (context switches, a neighbour thrashing the shared L3) that a shared machine adds.
  std::vector<double> per_second_ns;
  per_second_ns.reserve(o.seconds);
  for (std::uint32_t sec = 0; sec < o.seconds; ++sec) {
    const auto g0 = Clock::now();
    chunk.clear();
    fleet.emit_second(sec, chunk);
    std::sort(chunk.begin(), chunk.end(), [](const Event& a, const Event& b) {
      return a.at != b.at ? a.at < b.at : a.device < b.device;
    });
    const auto t0 = Clock::now();
    const auto c0 = thread_cpu();
    if (o.per_event) {
      for (const Event& ev : chunk) engine.on_event(ev);
    } else {
      engine.on_events(chunk.data(), chunk.size());  // the app's batch path (prefetches)
    }
    engine.tick(mono_ms((static_cast<std::int64_t>(sec) + 1) * 1000));
    engine.drain(transitions);
    const auto cpu = thread_cpu() - c0;
    engine_cpu += cpu;
    if (!chunk.empty()) {
      per_second_ns.push_back(static_cast<double>(cpu.count()) / static_cast<double>(chunk.size()));
    }
    const auto t1 = Clock::now();
    gen_time += t0 - g0;
    engine_time += t1 - t0;
    events += chunk.size();
    transition_count += transitions.size();
    transitions.clear();
  }
  const std::size_t rss2 = rss_bytes();
  const std::size_t heap2 = heap_bytes();
  // The chunk/transition buffers and the generator's calendar buckets may have grown during the
  // run; they are not the engine's.
  const std::size_t buffers = chunk.capacity() * sizeof(Event) +
                              transitions.capacity() * sizeof(Transition) +
                              (fleet.generator_bytes() - gen0);

  const double n = static_cast<double>(o.devices);
  const double engine_s = std::chrono::duration<double>(engine_cpu).count();
  const double engine_wall_s = secs(engine_time);
  const auto counts = engine.counts();

  metric("core_events_per_s", engine_s > 0 ? static_cast<double>(events) / engine_s : 0,
         "events/s");
  metric("core_bytes_per_device", (static_cast<double>(rss1) - static_cast<double>(rss0)) / n,
         "B");
  metric_int("core_devices", o.devices, "devices");
  metric("core_ns_per_event", events ? engine_s * 1e9 / static_cast<double>(events) : 0, "ns");
  if (!per_second_ns.empty()) {
    auto mid = per_second_ns.begin() + static_cast<std::ptrdiff_t>(per_second_ns.size() / 2);
    std::nth_element(per_second_ns.begin(), mid, per_second_ns.end());
    metric("core_ns_per_event_median", *mid, "ns");
    metric("core_events_per_s_median", *mid > 0 ? 1e9 / *mid : 0, "events/s");
  }
  metric_int("core_events", events, "events");
  metric("core_engine_seconds", engine_s, "s");
  metric("core_events_per_s_wall",
         engine_wall_s > 0 ? static_cast<double>(events) / engine_wall_s : 0, "events/s");
  metric("core_generate_seconds", secs(gen_time), "s");
  metric_int("core_seconds_simulated", o.seconds, "s");
  metric("core_setup_per_s", setup_s > 0 ? n / setup_s : 0, "devices/s");
  metric("core_id_bytes_per_device", static_cast<double>(id_bytes) / n, "B");
  metric("core_heap_bytes_per_device",
         (static_cast<double>(heap1) - static_cast<double>(heap0)) / n, "B");
  metric("core_bytes_per_device_end",
         (static_cast<double>(rss2) - static_cast<double>(rss0) - static_cast<double>(buffers)) / n,
         "B");
  metric("core_heap_bytes_per_device_end",
         (static_cast<double>(heap2) - static_cast<double>(heap0) - static_cast<double>(buffers)) /
             n,
         "B");
  metric("core_engine_bytes_per_device",
         static_cast<double>(engine.memory_bytes()) / n, "B");  // the engine's own accounting
  metric_int("core_transitions", transition_count, "transitions");
  const auto counters = engine.counters();
  metric_int("core_timers_fired", counters.timers_fired, "timers");
  metric_int("core_dropped_events",
             counters.stale_events + counters.duplicate_events + counters.invalid_events,
             "events");
  metric_int("core_final_online", counts[static_cast<std::size_t>(presence::core::State::Online)],
             "devices");
  metric_int("core_final_offline",
             counts[static_cast<std::size_t>(presence::core::State::Offline)], "devices");
  metric_int("core_final_flapping",
             counts[static_cast<std::size_t>(presence::core::State::Flapping)], "devices");
  metric("bench_generator_bytes", static_cast<double>(fleet.generator_bytes()), "B");
  return 0;
}
