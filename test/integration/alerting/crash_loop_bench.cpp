// Crash-loop benchmark (issue 19): real mosquitto, the real presenced, presence-sim devices dying
// and returning, the validating PagerDuty mock; presenced is SIGKILLed N times (default 50) at
// random moments and started again at once. Prints JSON lines (one object per line, docs/
// benchmarks.md) and exits 1 if a page was lost: a trigger never resolved, a long outage never
// paged, or more duplicates than kills (at-least-once allows the request in flight per kill).
//
//   crash_loop_bench [--kills N] [--devices D] [--seed S] [--min-gap-ms A] [--max-gap-ms B]
//
// An outage is "expected to page" when it lasts at least offline_grace + alert_after + 1 s of
// slack. It "must page" when, besides, some stretch of it of that length lies outside every
// restart window (from a kill to the end of the restart grace that followed, as /metrics'
// presence_restart_grace_active showed it, polled every 100 ms): then no restart grace can
// explain a missing page. Outages that lie mostly in restart windows may go unpaged by design
// (nobody is declared offline on silence presenced did not observe, docs/core.md "Restart
// grace"): counted as outages_unpaged_in_grace.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <random>
#include <string>
#include <vector>

#include "test/integration/alerting/harness.h"

using namespace presence;
using namespace presence::atest;

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void line(const std::string& name, double value, const std::string& unit) {
  nlohmann::json j = {{"name", name}, {"value", value}, {"unit", unit}};
  std::cout << j.dump() << std::endl;
}

struct Outage {
  std::string device;
  std::int64_t start = 0, end = 0;  // wall ms; end 0 = never back
};

}  // namespace

int main(int argc, char** argv) {
  int kills = 50, devices = 40;
  unsigned seed = 1;
  int min_gap_ms = 3000, max_gap_ms = 9000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--kills") kills = v;
    else if (a == "--devices") devices = v;
    else if (a == "--seed") seed = static_cast<unsigned>(v);
    else if (a == "--min-gap-ms") min_gap_ms = v;
    else if (a == "--max-gap-ms") max_gap_ms = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  // Timings (the harness defaults): offline_grace 2 s, alert_after 1 s, online_stable_for 1 s,
  // restart grace 2..8 s (settle 1 s), snapshot_interval 500 ms, group_wait 500 ms.
  const std::int64_t page_after_ms = 2000 + 1000 + 500 + 1000;  // + group_wait, + slack
  try {
    test::Mosquitto broker;
    broker.start();
    MockPagerDuty pd;
    Presenced p(broker.port(), pd.url());
    p.start();
    // Devices fail at random (about one every 2 s across the fleet) and come back after 3-15 s;
    // the failures stop before the end so every device is back for the final count.
    const int run_s = (kills * (min_gap_ms + max_gap_ms) / 2) / 1000 + 10;
    const std::string timeline = "  - at: 1s\n    failures: {rate: 30/min, down: 3s-15s, never: 0}\n"
                                 "  - at: " + std::to_string(run_s) +
                                 "s\n    failures: {rate: 0/min}\n";
    Sim sim(broker.port(), devices, timeline, std::to_string(seed));
    if (!wait_for([&] { return p.online() == devices; }, 30s)) {
      std::fprintf(stderr, "devices did not come online\n%s\n", sim.log().c_str());
      return 1;
    }
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> gap(min_gap_ms, max_gap_ms);
    const std::int64_t t0 = wall_ms();
    std::vector<std::int64_t> kill_at;
    // Restart windows (wall ms): presenced down or in restart grace, from a poller of /metrics.
    std::vector<std::pair<std::int64_t, std::int64_t>> restart_windows;
    std::mutex windows_mu;
    std::atomic<bool> polling{true};
    std::thread poller([&] {
      std::int64_t open = -1;
      while (polling) {
        const std::int64_t now = wall_ms();
        const double g = p.metric("presence_restart_grace_active");
        const bool judging = g == 0;  // -1: not answering (killed or starting)
        if (!judging && open < 0) open = now - 100;
        if (judging && open >= 0) {
          std::lock_guard lock(windows_mu);
          restart_windows.emplace_back(open, now + 100);
          open = -1;
        }
        std::this_thread::sleep_for(100ms);
      }
      if (open >= 0) restart_windows.emplace_back(open, wall_ms());
    });
    for (int k = 0; k < kills; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(gap(rng)));
      const std::int64_t killed = wall_ms();
      kill_at.push_back(killed - t0);
      {
        std::lock_guard lock(windows_mu);  // the poller may not have seen a short outage
        restart_windows.emplace_back(killed, killed);
      }
      p.stop(SIGKILL);
      p.start();
    }
    // Let the failures stop, everyone come back, and the last pages go out.
    const std::int64_t quiet_from = t0 + static_cast<std::int64_t>(run_s) * 1000 + 16000;
    while (wall_ms() < quiet_from) std::this_thread::sleep_for(500ms);
    wait_for([&] { return p.online() == devices; }, 60s);
    std::size_t last = 0;
    for (int quiet = 0; quiet < 8;) {  // 8 s without a new page
      std::this_thread::sleep_for(1s);
      const std::size_t n = pd.events().size();
      quiet = n == last ? quiet + 1 : 0;
      last = n;
    }
    const auto events = pd.events();
    polling = false;
    poller.join();
    std::sort(restart_windows.begin(), restart_windows.end());
    std::int64_t in_windows_ms = 0, covered_to = 0;
    for (const auto& [a, b] : restart_windows) {
      in_windows_ms += std::max<std::int64_t>(0, b - std::max(a, covered_to));
      covered_to = std::max(covered_to, b);
    }
    p.stop(SIGTERM);
    sim.stop();

    // Outages from the simulator's truth: die -> next connect.
    std::map<std::string, std::int64_t> down_since;
    std::vector<Outage> outages;
    std::istringstream truth(sim.truth());
    for (std::string l; std::getline(truth, l);) {
      nlohmann::json j = nlohmann::json::parse(l, nullptr, false);
      if (!j.is_object() || !j.contains("device")) continue;
      const std::string ev = j.value("event", "");
      const std::string dev = j.value("device", "");
      const std::int64_t t = j.value("t", std::int64_t{0});
      if (ev == "die" || ev == "disconnect") {
        if (!down_since.count(dev)) down_since[dev] = t;
      } else if (ev == "connect") {
        auto it = down_since.find(dev);
        if (it != down_since.end()) {
          outages.push_back({dev, it->second, t});
          down_since.erase(it);
        }
      }
    }
    for (const auto& [dev, t] : down_since) outages.push_back({dev, t, 0});

    std::map<std::string, std::vector<PdEvent>> by_key;
    std::size_t triggers = 0, resolves = 0;
    for (const auto& e : events) {
      by_key[e.dedup_key].push_back(e);
      (e.action == "trigger" ? triggers : resolves) += 1;
    }
    std::size_t expected = 0, must = 0, unpaged_must = 0, unpaged_grace = 0, never_back = 0;
    for (const auto& o : outages) {
      if (o.end == 0) {
        ++never_back;
        continue;
      }
      const std::int64_t len = o.end - o.start;
      if (len < page_after_ms) continue;
      ++expected;
      // Longest stretch of the outage outside every restart window.
      std::int64_t longest = 0, from = o.start;
      for (const auto& [a, b] : restart_windows) {  // sorted by start
        if (b <= from || a >= o.end) continue;
        longest = std::max(longest, std::min(a, o.end) - from);
        from = std::max(from, b);
      }
      longest = std::max(longest, o.end - from);
      const bool must_page = longest >= page_after_ms;
      must += must_page;
      // Paged: a page naming the device (its own, or a group listing it) was open at some time
      // during the outage: triggered before it ended (+2 s) and not resolved before it began. (A
      // device back for less than online_stable_for and down again is one outage to presenced:
      // its page stays open across both.)
      bool paged = false;
      for (std::size_t i = 0; i < events.size() && !paged; ++i) {
        const auto& e = events[i];
        if (e.action != "trigger" || e.received_ms > o.end + 2000) continue;
        if (e.dedup_key != "presence/device/" + o.device &&
            (e.dedup_key.rfind("presence/device/", 0) == 0 ||
             (e.summary.find(o.device) == std::string::npos &&
              e.details.dump().find("\"" + o.device) == std::string::npos)))
          continue;
        std::int64_t resolved = std::numeric_limits<std::int64_t>::max();
        for (std::size_t j = i + 1; j < events.size(); ++j)
          if (events[j].dedup_key == e.dedup_key && events[j].action == "resolve") {
            resolved = events[j].received_ms;
            break;
          }
        paged = resolved >= o.start;
      }
      if (!paged) {
        (must_page ? unpaged_must : unpaged_grace) += 1;
        std::fprintf(stderr, "not paged%s: %s down %.1f s from t=%.1f s\n",
                     must_page ? " (must page)" : " (in a restart grace)", o.device.c_str(),
                     static_cast<double>(len) / 1000.0,
                     static_cast<double>(o.start - t0) / 1000.0);
      }
    }
    std::size_t never_resolved = 0;
    for (const auto& [key, es] : by_key)
      if (!es.empty() && es.back().action == "trigger") ++never_resolved;
    const std::size_t duplicates = pd.duplicates().size();
    const std::size_t invalid = pd.errors().size();

    line("crash_loop_kills", kills, "count");
    line("crash_loop_seconds_down_or_in_restart_grace", static_cast<double>(in_windows_ms) / 1000.0,
         "s");
    line("crash_loop_devices", devices, "count");
    line("crash_loop_outages", static_cast<double>(outages.size()), "count");
    line("crash_loop_outages_expected_to_page", static_cast<double>(expected), "count");
    line("crash_loop_outages_must_page", static_cast<double>(must), "count");
    line("crash_loop_triggers_delivered", static_cast<double>(triggers), "count");
    line("crash_loop_resolves_delivered", static_cast<double>(resolves), "count");
    line("crash_loop_duplicates", static_cast<double>(duplicates), "count");
    line("crash_loop_triggers_never_resolved", static_cast<double>(never_resolved), "count");
    line("crash_loop_outages_never_paged", static_cast<double>(unpaged_must), "count");
    line("crash_loop_outages_unpaged_in_grace", static_cast<double>(unpaged_grace), "count");
    line("crash_loop_devices_never_back", static_cast<double>(never_back), "count");
    line("crash_loop_invalid_requests", static_cast<double>(invalid), "count");
    const bool ok = never_resolved == 0 && unpaged_must == 0 && invalid == 0 &&
                    duplicates <= static_cast<std::size_t>(kills);
    if (!ok) {
      std::cerr << "kills at (ms):";
      for (auto k : kill_at) std::cerr << " " << k;
      std::cerr << "\npages:\n";
      for (const auto& e : events)
        std::cerr << (e.received_ms - t0) << " " << e.action << " " << e.dedup_key << " "
                  << e.summary.substr(0, 100) << "\n";
      for (const auto& d : pd.duplicates()) std::cerr << "duplicate: " << d << "\n";
    }
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crash_loop_bench: %s\n", e.what());
    return 1;
  }
}
