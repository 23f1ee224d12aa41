// presence-snapshot-bench: what a snapshot costs the engine thread and what a restart from it
// costs, at N devices (issue 16 item 3: no engine pause > 10 ms, ready <= 2 s at 1 M devices).
//
//   presence-snapshot-bench [--devices N] [--dir D] [--budget-us B] [--churn K]
//
// The fleet: N ids of 22 bytes ("site-0042/dev-00001234", as presence-bench), labels site (1000
// values) and fw (8 values), all connected, 10 % then gone (suspect/offline). Then, timed:
//   - the whole copy in one go (Engine::snapshot(), the pause before slices);
//   - the sliced copy as app::Alerting takes it: a slice per batch, each sized from the measured
//     rate to --budget-us, with K devices changing state between batches (--churn), until the
//     copy is complete and current; the longest slice is presence_snapshot_pause_seconds;
//   - the policy's text, encode + write (the saver thread), the file size;
//   - restart: read, decode, Engine::reserve + restore with the alert policy as observer, then
//     the policy's resync and the policy's own state from its text (what happens before
//     presenced is ready).
// Output: JSON lines {"name":..,"value":..,"unit":..}; nothing here asserts speed.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "presence/core/engine.h"
#include "presence/core/policy.h"
#include "presence/core/snapshot_slicer.h"
#include "presence/store/file_io.h"
#include "presence/store/snapshot.h"

namespace {

using namespace presence;
using Clock = std::chrono::steady_clock;

void metric(const char* name, double value, const char* unit) {
  std::printf("{\"name\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"}\n", name, value, unit);
  std::fflush(stdout);
}

// This thread's CPU time: on a loaded machine a slice's wall time includes time the scheduler gave
// to others; the CPU time is what the slice itself costs.
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

core::Event ev(core::EventKind kind, core::DeviceIndex d, std::int64_t at_ms) {
  core::Event e;
  e.kind = kind;
  e.device = d;
  e.at = core::mono_ms(at_ms);
  e.source = core::Source::Status;
  if (kind == core::EventKind::Disconnected) e.reason = core::DisconnectReason::LastWill;
  return e;
}

int usage(const char* why) {
  std::fprintf(stderr,
               "presence-snapshot-bench: %s\nusage: presence-snapshot-bench [--devices N] "
               "[--dir D] [--budget-us B] [--churn K]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t n = 1'000'000;
  std::string dir = "/tmp";
  std::int64_t budget_us = 2000;
  std::uint64_t churn = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage(("missing value for " + a).c_str());
    const char* v = argv[++i];
    if (a == "--devices") n = std::strtoull(v, nullptr, 10);
    else if (a == "--dir") dir = v;
    else if (a == "--budget-us") budget_us = std::strtoll(v, nullptr, 10);
    else if (a == "--churn") churn = std::strtoull(v, nullptr, 10);
    else return usage(("bad argument " + a).c_str());
  }
  if (n < 1 || n > 50'000'000 || budget_us < 1) return usage("--devices 1..50000000, --budget-us >= 1");
  metric("snapshot_devices", static_cast<double>(n), "devices");

  core::Engine engine;
  // Wired as presenced wires it: the slicer in front of the alert policy.
  core::AlertPolicy live_policy(core::PolicyConfig{}, core::FleetConfig{},
                                [&engine](core::DeviceIndex d) { return std::string(engine.id_of(d)); });
  core::SnapshotSlicer slicer(&live_policy);
  engine.set_observer(&slicer);
  engine.reserve(n, n * 22);
  std::int64_t t = 1000;
  {
    char id[64];
    std::vector<core::Event> batch;
    batch.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) {
      std::snprintf(id, sizeof id, "site-%04" PRIu64 "/dev-%08" PRIu64, i % 1000, i);
      const auto d = engine.intern(id);
      engine.set_label(d, "site", std::string(id + 5, 4));
      engine.set_label(d, "fw", "1." + std::to_string(i % 8));
      batch.push_back(ev(core::EventKind::Connected, d, t));
    }
    engine.on_events(batch.data(), batch.size());
    batch.clear();
    t = 5000;
    for (std::uint64_t i = 0; i < n; i += 10)
      batch.push_back(ev(core::EventKind::Disconnected, static_cast<core::DeviceIndex>(i), t));
    engine.on_events(batch.data(), batch.size());
    t = 120'000;
    engine.tick(core::mono_ms(t));
    std::vector<core::Transition> drained;
    engine.drain(drained);
  }
  metric("snapshot_fleet_rss", static_cast<double>(rss_bytes()) / 1e6, "MB");

  // Before: the whole copy in one go on the engine thread.
  {
    const auto t0 = Clock::now();
    const double c0 = thread_cpu_ms();
    const auto whole = engine.snapshot();
    metric("snapshot_whole_copy_pause", ms_since(t0), "ms");
    metric("snapshot_whole_copy_cpu", thread_cpu_ms() - c0, "ms");
  }

  // After: slices, as app::Alerting takes them (slice size from the measured rate).
  std::size_t slice = 16384, slices = 0;
  double longest = 0, total = 0, longest_cpu = 0;
  std::vector<double> pauses;
  std::uint64_t changed = 0;
  std::uint64_t next_change = 1;
  core::DeviceCopy copy;
  core::PolicySnapshot policy_copy;
  double policy_copy_ms = 0;
  slicer.begin();
  std::vector<core::Transition> drained;
  for (bool done = false; !done;) {
    // The batch in between: `churn` devices change state (some after their slice: copied again).
    t += 1;
    for (std::uint64_t k = 0; k < churn; ++k, next_change = (next_change * 7919 + 13) % n) {
      const auto d = static_cast<core::DeviceIndex>(next_change);
      engine.on_event(ev(engine.view(d).state == core::State::Online ? core::EventKind::Disconnected
                                                                      : core::EventKind::Connected,
                         d, t));
      ++changed;
    }
    engine.tick(core::mono_ms(t));
    engine.drain(drained);
    drained.clear();
    const std::size_t before = slicer.copied();
    const auto t0 = Clock::now();
    const double c0 = thread_cpu_ms();
    done = slicer.step(engine, slice);
    if (done) {
      copy = slicer.take();
      const auto p0 = Clock::now();
      // The last slice copies the policy, ids as index tokens (app/alerting.cpp).
      policy_copy = live_policy.snapshot(&core::DeviceCopy::index_token);
      policy_copy_ms = ms_since(p0);
    }
    const double took = ms_since(t0);
    longest_cpu = std::max(longest_cpu, thread_cpu_ms() - c0);
    pauses.push_back(took);
    ++slices;
    longest = std::max(longest, took);
    total += took;
    const std::size_t did = slicer.copied() - before;
    if (!done && did == slice && took > 0)
      slice = std::clamp<std::size_t>(
          static_cast<std::size_t>(static_cast<double>(budget_us) / 1000.0 / took * did), 1024,
          1u << 20);
  }
  metric("snapshot_slice_pause_max", longest, "ms");
  std::sort(pauses.begin(), pauses.end());
  metric("snapshot_slice_pause_median", pauses[pauses.size() / 2], "ms");
  metric("snapshot_slice_cpu_max", longest_cpu, "ms");
  metric("snapshot_slice_copy_total", total, "ms");
  metric("snapshot_slices", static_cast<double>(slices), "slices");
  metric("snapshot_policy_copy", policy_copy_ms, "ms");
  metric("snapshot_policy_held", static_cast<double>(policy_copy.held.size()), "devices");
  metric("snapshot_slice_recopied", static_cast<double>(slicer.recopied()), "devices");
  metric("snapshot_churn_changes", static_cast<double>(changed), "changes");
  // What the copy holds while the saver writes it (entries + id chunks; label sets are few).
  metric("snapshot_copy_bytes",
         static_cast<double>(copy.entries.capacity() * sizeof(core::DeviceCopy::Entry) +
                             copy.ids.size() * core::DeviceCopy::kIdChunk),
         "bytes");

  // The saver thread: encode and write.
  const store::WallAnchor saved{std::chrono::system_clock::now(), core::mono_ms(t)};
  std::string file;
  {
    const auto t0 = Clock::now();
    core::for_each_id(policy_copy, [&copy](std::string& id) { copy.resolve(id); });
    const std::string incidents = core::to_text(policy_copy);
    metric("snapshot_policy_text", ms_since(t0), "ms");
    metric("snapshot_policy_text_bytes", static_cast<double>(incidents.size()), "bytes");
    file = store::encode_copy(copy, incidents, saved, 0);
    metric("snapshot_encode", ms_since(t0), "ms");
  }
  metric("snapshot_file_bytes", static_cast<double>(file.size()), "bytes");
  const std::string path = dir + "/presence-snapshot-bench." + std::to_string(getpid()) + ".bin";
  {
    const auto t0 = Clock::now();
    if (auto written = store::write_file_atomic(path, file); !written.ok()) {
      std::fprintf(stderr, "presence-snapshot-bench: %s\n", written.error.c_str());
      return 1;
    }
    metric("snapshot_write", ms_since(t0), "ms");
  }
  file.clear();
  file.shrink_to_fit();
  copy = {};

  // Restart: read, decode, reserve + restore.
  const store::WallAnchor restarted{std::chrono::system_clock::now(), core::mono_ms(1000)};
  const auto r0 = Clock::now();
  const double rc0 = thread_cpu_ms();
  auto read = store::read_file(path);
  if (!read.ok() || !read.value) {
    std::fprintf(stderr, "presence-snapshot-bench: %s\n",
                 read.ok() ? (path + ": missing").c_str() : read.error.c_str());
    return 1;
  }
  std::string bytes = std::move(*read.value);
  ::unlink(path.c_str());
  metric("restore_read", ms_since(r0), "ms");
  auto t1 = Clock::now();
  auto loaded = store::decode_snapshot(bytes, restarted);
  metric("restore_decode", ms_since(t1), "ms");
  if (loaded.status != store::LoadStatus::Ok || loaded.snapshot.devices.size() != n) {
    std::fprintf(stderr, "presence-snapshot-bench: the file did not load back whole: %s, %zu devices (%s)\n",
                 store::to_string(loaded.status), loaded.snapshot.devices.size(), loaded.error.c_str());
    return 1;
  }
  core::Engine after;
  // As presenced wires it (app/alerting.cpp): the alert policy behind the slicer hears the
  // restore's labels, then resyncs with the restored states.
  core::AlertPolicy policy(core::PolicyConfig{}, core::FleetConfig{},
                           [&after](core::DeviceIndex d) { return std::string(after.id_of(d)); });
  core::SnapshotSlicer observer(&policy);
  after.set_observer(&observer);
  t1 = Clock::now();
  after.reserve(loaded.snapshot.devices.size());
  after.restore(loaded.snapshot.devices, core::mono_ms(1000));
  metric("restore_engine", ms_since(t1), "ms");
  t1 = Clock::now();
  policy.resync(after);
  metric("restore_policy_resync", ms_since(t1), "ms");
  // The policy's own state (the held devices, the incident), as app::Alerting::on_start does.
  t1 = Clock::now();
  core::PolicySnapshot policy_state;
  std::string policy_error;
  if (!core::AlertPolicy::deserialize(loaded.snapshot.incidents, policy_state, policy_error)) {
    std::fprintf(stderr, "presence-snapshot-bench: policy text: %s\n", policy_error.c_str());
    return 1;
  }
  policy.restore(policy_state, core::mono_ms(1000),
                 [&after](std::string_view id) { return after.intern(id); });
  metric("restore_policy_state", ms_since(t1), "ms");
  metric("restore_total", ms_since(r0), "ms");
  metric("restore_total_cpu", thread_cpu_ms() - rc0, "ms");
  if (after.device_count() != n) {
    std::fprintf(stderr, "presence-snapshot-bench: restored %zu of %" PRIu64 " devices\n",
                 after.device_count(), n);
    return 1;
  }
  return 0;
}
