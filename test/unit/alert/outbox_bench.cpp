// Outbox throughput, printed as JSON lines {"name":..,"value":..,"unit":..} (HELPERS.md: numbers
// go in benchmark programs, never asserted in tests). Run: build/test/unit/alert/alert_outbox_bench
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "presence/alert/dispatcher.h"
#include "presence/alert/outbox.h"
#include "presence/alert/payload.h"
#include "test/support/process.h"

using namespace presence;
using namespace presence::alert;
using Clock = std::chrono::steady_clock;

namespace {

void emit(const char* name, double value, const char* unit) {
  std::printf("{\"name\":\"%s\",\"value\":%.1f,\"unit\":\"%s\"}\n", name, value, unit);
}

OutboxEntry entry(int k) {
  OutboxEntry e;
  e.sink = "pd";
  e.wall_ms = 1'700'000'000'000 + k;
  e.intent.dedup_key = "presenced/device_offline/dev-" + std::to_string(k);
  e.intent.summary = "dev-" + std::to_string(k) + " offline for 30s (last will)";
  e.intent.component = "dev-" + std::to_string(k);
  e.intent.group = "site-a";
  e.intent.details = {{"reason", "last_will"}, {"site", "site-a"}};
  return e;
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main() {
  presence::test::TempDir dir;
  OutboxConfig c;
  c.path = dir.file("outbox.log");
  c.max_entries_per_sink = 1'000'000;
  c.log = [](std::string_view) {};
  {
    Outbox box(c);
    box.open({"pd"}, nullptr);
    const int n = 200;
    auto t0 = Clock::now();
    for (int k = 0; k < n; ++k) {
      std::vector<OutboxEntry> one{entry(k)};
      box.append(one);
    }
    emit("outbox_append_fsync_each", n / seconds_since(t0), "entries/s");

    const int batches = 50;
    t0 = Clock::now();
    for (int b = 0; b < batches; ++b) {
      std::vector<OutboxEntry> es;
      for (int k = 0; k < 100; ++k) es.push_back(entry(b * 100 + k));
      box.append(es);
    }
    emit("outbox_append_fsync_batch100", batches * 100 / seconds_since(t0), "entries/s");

    t0 = Clock::now();
    for (int k = 0; k < n; ++k) {
      auto head = box.take("pd", 1);
      box.settle({head.at(0).seq}, Disposition::Delivered);
    }
    emit("outbox_settle_fsync_each", n / seconds_since(t0), "entries/s");
  }
  {
    OutboxConfig big = c;
    big.path = dir.file("big.log");
    big.fsync = false;
    Outbox box(big);
    box.open({"pd"}, nullptr);
    std::vector<OutboxEntry> es;
    for (int k = 0; k < 100'000; ++k) es.push_back(entry(k));
    box.append(es);
    const auto st = box.stats();
    emit("outbox_bytes_per_entry", static_cast<double>(st.file_bytes) / 100'000, "bytes");
  }
  {
    OutboxConfig big = c;
    big.path = dir.file("big.log");
    const auto t0 = Clock::now();
    Outbox box(big);
    box.open({"pd"}, nullptr);
    emit("outbox_open_100k_entries", seconds_since(t0) * 1000, "ms");
  }
  {
    const auto e = entry(7);
    const PagerDutyFields f{"rk", "host"};
    const int n = 100'000;
    std::size_t bytes = 0;
    const auto t0 = Clock::now();
    for (int k = 0; k < n; ++k) bytes += pagerduty_body(f, e).size();
    emit("pagerduty_body_build", n / seconds_since(t0), "bodies/s");
    if (bytes == 0) return 1;
  }
  {
    // Engine-thread cost of submit() while the writer fsyncs and the sink endpoint refuses every
    // connection: submit only takes a mutex and moves a vector (issue 5, never block the engine).
    DispatcherConfig dc;
    dc.outbox.path = dir.file("dispatch.log");
    dc.log = [](std::string_view) {};
    PagerDutyConfig pd;
    pd.sink = sink_config(
        "pagerduty", "http://127.0.0.1:" + std::to_string(presence::test::free_tcp_port()) + "/");
    std::vector<std::unique_ptr<Sink>> sinks;
    sinks.push_back(make_pagerduty_sink(pd));
    Dispatcher d(dc, std::move(sinks));
    if (!d.start().ok()) return 1;
    const int n = 20'000;
    std::vector<double> ns;
    ns.reserve(n);
    const auto t0 = Clock::now();
    for (int k = 0; k < n; ++k) {
      std::vector<core::AlertIntent> one{entry(k).intent};
      const auto s = Clock::now();
      d.submit(std::move(one));
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - s).count());
    }
    d.wait_durable(std::chrono::seconds(60));
    emit("dispatcher_submit_to_durable_20k", seconds_since(t0) * 1000, "ms");
    std::sort(ns.begin(), ns.end());
    emit("dispatcher_submit_p50", ns[n / 2], "ns");
    emit("dispatcher_submit_p99", ns[n * 99 / 100], "ns");
    emit("dispatcher_submit_max", ns.back(), "ns");
    d.stop();
  }
  return 0;
}
