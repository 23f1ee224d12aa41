// Overload never convicts (issue 16): a flood through a real mosquitto past what presenced can
// read makes the broker drop QoS 0 messages to presenced (heartbeats among them) and delays the
// rest in socket buffers. presenced must notice (own probes, the broker's drop counter, ingest
// lag), say so (metric, log, /readyz) and judge no device offline on that silence.
// The flood is made past presenced's capacity on any machine by stopping presenced (SIGSTOP) for
// 3 s of it: the backlog fills the socket buffers, the broker drops what does not fit in its
// queue for presenced, and what arrives after is seconds old. Without the overload stretch every
// device goes offline here (checked: 10 of 10). Bounded: a 4 s flood on loopback, ~15 s in all.
#include <doctest/doctest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test/integration/service/harness.h"

using namespace presence::itest;
using presence::test::Mosquitto;

namespace {
using Clock = std::chrono::steady_clock;
constexpr int kDevices = 10;
constexpr int kFlooders = 2;
constexpr auto kFlood = 4s;
constexpr auto kStall = 3000ms;
constexpr int kFloodLines = 1'000'000;  // more than 3 s at full speed
}  // namespace

TEST_CASE("a flood past presenced's capacity: overloaded, said so, and 0 devices offline") {
  // A short out-queue per client and $SYS every second: drops start as soon as presenced falls
  // behind, and the drop counter is seen while it matters.
  Mosquitto broker("max_queued_messages 100\nsys_interval 1\n");
  broker.start();
  PresencedOptions o;
  o.offline_grace = "1s";
  o.heartbeat_timeout_floor = "1s";
  o.heartbeat_default_interval = "200ms";
  // Ids the flood uses are not devices: parsed and dropped, as cheap as ingest gets.
  o.extra = "topics:\n  ignore_ids: [\"flood-*\"]\n"
            "overload:\n  lag_limit: 500ms\n  clear_after: 2s\n  alert_after: 1s\n";
  Presenced p(broker.port(), o);
  p.start();
  Observer obs(broker.uri());

  std::vector<std::unique_ptr<PahoDevice>> devices;
  for (int i = 0; i < kDevices; ++i) {
    devices.push_back(std::make_unique<PahoDevice>(broker.uri(), "hb-" + std::to_string(i) + "-" +
                                                                     unique_suffix(),
                                                   100ms));
    devices.back()->connect()->wait_for(10s);
  }
  std::atomic<bool> beating{true};
  std::thread beats([&] {
    while (beating) {
      for (auto& d : devices) d->heartbeat();
      std::this_thread::sleep_for(200ms);
    }
  });
  for (auto& d : devices) REQUIRE(obs.wait_state(d->id(), "online", 10s));
  // Settled: restart grace over, heartbeats judged (a silent device would go suspect now).
  REQUIRE(wait_for([&] { return p.metric("presence_restart_grace_active") == 0; }, 20s));
  std::this_thread::sleep_for(1500ms);
  REQUIRE(p.metric("presence_overloaded") == 0);

  // Flood: kFlooders mosquitto_pub processes publishing QoS 0 lines as fast as the broker takes
  // them (~250 k/s each on an idle loopback). Separate processes: Paho clients in this process
  // share one library lock with the devices above and starved their heartbeats instead.
  presence::test::TempDir flood_dir;
  {
    std::string lines;
    const std::string line = std::string(64, 'x') + "\n";
    lines.reserve(line.size() * kFloodLines);
    for (int i = 0; i < kFloodLines; ++i) lines += line;
    flood_dir.write("flood.txt", lines);
  }
  std::vector<presence::test::Process> flooders;
  for (int f = 0; f < kFlooders; ++f) {
    flooders.emplace_back(std::vector<std::string>{
        "/bin/sh", "-c",
        "exec " + presence::test::find_program("mosquitto_pub") + " -h 127.0.0.1 -p " +
            std::to_string(broker.port()) + " -q 0 -l -i flood-" + std::to_string(f) + "-" +
            unique_suffix() + " -t devices/flood-" + std::to_string(f) + "/heartbeat < " +
            flood_dir.file("flood.txt")});
  }
  // And a starved presenced: no CPU for kStall of the flood (a noisy neighbour, a swap storm),
  // so the flood piles up in the socket buffers and the broker's queue for presenced, then the
  // broker drops what does not fit (max_queued_messages), heartbeats among it.
  bool seen_overloaded = false, seen_not_ready = false, seen_page = false;
  auto page_open = [&] {
    return p.body("/v1/alerts").find("presence/self/overloaded") != std::string::npos;
  };
  std::this_thread::sleep_for(300ms);
  p.signal(SIGSTOP);
  std::this_thread::sleep_for(kStall);
  p.signal(SIGCONT);
  const auto flood_end = Clock::now() + (kFlood - kStall - 300ms);
  while (Clock::now() < flood_end) {
    if (p.metric("presence_overloaded") == 1) seen_overloaded = true;
    if (p.status("/readyz") == 503) seen_not_ready = true;
    if (!seen_page && page_open()) seen_page = true;
    std::this_thread::sleep_for(50ms);
  }
  for (auto& f : flooders) f.stop(SIGTERM, 2000ms);

  // Caught up: clear_after (2 s) without a signal after the backlog drained.
  CHECK(wait_for([&] {
    if (p.metric("presence_overloaded") == 1) seen_overloaded = true;
    if (p.status("/readyz") == 503) seen_not_ready = true;
    if (!seen_page && page_open()) seen_page = true;
    return p.metric("presence_overloaded") == 0;
  }, 30s));
  // Some seconds of normal judging after it: every device heartbeats, none may be offline.
  std::this_thread::sleep_for(3s);
  beating = false;
  beats.join();

  MESSAGE("suspect ever: " << obs.ever("suspect").size() << ", offline ever: "
                           << obs.ever("offline").size() << ", broker dropped "
                           << p.metric("presence_broker_dropped_messages"));
  MESSAGE("flood: " << kFlood.count() << " s; probes lost "
                    << p.metric("presence_probes_lost_total") << ", overloads "
                    << p.metric("presence_overloads_total"));
  // The precondition of the test: presenced really was overloaded.
  CHECK(p.metric("presence_overloads_total") >= 1);
  CHECK(seen_overloaded);
  CHECK(seen_not_ready);
  CHECK(p.log().find("overload: presenced is behind") != std::string::npos);
  CHECK(p.log().find("overload: caught up") != std::string::npos);
  // Overloaded longer than alert_after (1 s): paged once as presenced's own problem, resolved.
  CHECK(p.log().find("presence/self/overloaded page resolved") != std::string::npos);
  CHECK(seen_page);
  // The point: no heartbeating device was ever published offline.
  for (auto& d : devices) {
    const auto h = obs.history(d->id());
    bool offline = false;
    for (const auto& s : h) offline = offline || s == "offline";
    CHECK_MESSAGE(!offline, d->id() << " went offline during the flood");
    CHECK(obs.state(d->id()) == "online");
  }
  CHECK(p.metric("presence_devices{state=\"offline\"}") <= 0);
  const std::string log = p.log();
  for (std::size_t pos = 0; (pos = log.find("overload", pos)) != std::string::npos; ++pos)
    MESSAGE(log.substr(log.rfind('\n', pos) + 1, log.find('\n', pos) - log.rfind('\n', pos) - 1));
}
