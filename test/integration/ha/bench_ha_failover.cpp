// Failover benchmark (issue 13): real etcd + two presenced + mosquitto + presence-sim + mock
// PagerDuty. Each round: a device dies, the leader is killed (SIGKILL) at once, and we time
// "leader killed -> first page from the new leader". Prints JSON lines (docs/benchmarks.md):
//   {"name":"ha_failover_ms_p50","value":...,"unit":"ms"} ... p99, duplicates per failover.
// Not a test: run by hand, `bench_ha_failover [--rounds N] [--lease-ttl 10s]`.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "test/integration/ha/harness.h"

using namespace presence;
using namespace presence::hatest;

int main(int argc, char** argv) {
  int rounds = 5;
  std::string lease = "10s";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--lease-ttl") == 0) lease = argv[i + 1];
  }
  HaOptions o;
  o.lease_ttl = lease;
  o.fail_open_after = "120s";
  Pair pair(o);
  HaPresenced& a = pair.a;
  HaPresenced& b = pair.b;
  MockPagerDuty& pd = pair.pd;
  a.start();
  b.start();
  // One device dies every 40 s (back 20 s later); rounds are aligned to the deaths below.
  std::string timeline;
  for (int i = 0; i < rounds; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "dev-%06d", 100 + i);
    timeline += "  - at: " + std::to_string(10 + 40 * i) + "s\n    die: {devices: " + id +
                ", back_after: 20s}\n";
  }
  const auto t_sim = std::chrono::steady_clock::now();
  Sim sim(pair.broker.port(), 200, timeline, "3");
  std::vector<double> ms;
  for (int i = 0; i < rounds; ++i) {
    HaPresenced* leader = wait_leader(a, b, 60s);
    if (leader == nullptr) {
      std::fprintf(stderr, "no leader\n");
      return 1;
    }
    // Kill right as the device dies: both decide its page ~3 s later; only the follower is left
    // to send it, once it holds the lease.
    std::this_thread::sleep_until(t_sim + std::chrono::seconds(10 + 40 * i));
    char key[64];
    std::snprintf(key, sizeof key, "presence/device/dev-%06d", 100 + i);
    const auto killed = std::chrono::steady_clock::now();
    leader->stop(SIGKILL);
    if (!pd.wait_events("trigger", key, 1, 60s)) {
      std::fprintf(stderr, "round %d: no page\n", i);
      return 1;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                           killed).count());
    leader->start();
  }
  std::this_thread::sleep_for(25s);  // let the last resolves arrive
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * ms.size()))]; };
  std::printf("{\"name\":\"ha_failover_ms_p50\",\"value\":%.0f,\"unit\":\"ms\",\"lease_ttl\":\"%s\",\"rounds\":%d}\n",
              pct(0.5), lease.c_str(), rounds);
  std::printf("{\"name\":\"ha_failover_ms_p99\",\"value\":%.0f,\"unit\":\"ms\",\"lease_ttl\":\"%s\",\"rounds\":%d}\n",
              pct(0.99), lease.c_str(), rounds);
  std::printf("{\"name\":\"ha_duplicates_per_failover\",\"value\":%.2f,\"unit\":\"pages\"}\n",
              static_cast<double>(pd.duplicates().size()) / rounds);
  std::printf("{\"name\":\"ha_pages_lost\",\"value\":%d,\"unit\":\"pages\"}\n",
              [&] {
                int lost = 0;
                for (int i = 0; i < rounds; ++i) {
                  char key[64];
                  std::snprintf(key, sizeof key, "presence/device/dev-%06d", 100 + i);
                  if (pd.count("trigger", key) < 1 || pd.count("resolve", key) < 1) ++lost;
                }
                return lost;
              }());
  return 0;
}
