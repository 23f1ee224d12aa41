// Integration test: presence-sim against a real mosquitto on a free loopback port, observed by an
// independent client (mosquitto_sub), so the codec is checked by a real broker and a real peer.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test/support/process.h"

using namespace presence::test;
using json = nlohmann::json;

namespace {

const std::string kSim = std::string(PRESENCE_BINARY_DIR) + "/presence/tools/sim/presence-sim";

std::vector<json> read_events(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

// What the observer saw on devices/+/status, in order: device -> ["online", "offline", ...].
std::map<std::string, std::vector<std::string>> observed(const std::string& path) {
  std::map<std::string, std::vector<std::string>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    auto topic = line.substr(0, sp);
    auto payload = json::parse(line.substr(sp + 1), nullptr, false);
    if (payload.is_discarded() || !payload.contains("state")) continue;
    auto a = topic.find('/'), b = topic.rfind('/');
    if (a == std::string::npos || b <= a) continue;
    out[topic.substr(a + 1, b - a - 1)].push_back(payload["state"].get<std::string>());
  }
  return out;
}

std::string last_state(const std::map<std::string, std::vector<std::string>>& obs,
                       const std::string& id) {
  auto it = obs.find(id);
  return it == obs.end() || it->second.empty() ? "" : it->second.back();
}

Process observer(const Mosquitto& broker, const std::string& out, const std::string& topic) {
  Process sub({find_program("mosquitto_sub"), "-h", "127.0.0.1", "-p",
               std::to_string(broker.port()), "-i", "observer", "-q", "1", "-v", "-t", topic},
              out);
  // Subscribed before the fleet starts, so live transitions are seen, not only retained state.
  REQUIRE(wait_for([&] { return read_file(broker.log_path()).find("observer 1 " + topic) !=
                                    std::string::npos; },
                   5000ms));
  return sub;
}

}  // namespace

TEST_CASE("--check validates without connecting; bad input fails with file:line and exit 2") {
  TempDir dir;
  auto good = dir.write("good.yaml", "options:\n  devices: 10\ntimeline:\n  - at: 1s\n    end:\n");
  Process ok({kSim, "--scenario", good, "--check", "--broker", "127.0.0.1:1"}, dir.file("ok.log"));
  CHECK(ok.wait_exit(5000ms) == 0);
  CHECK(read_file(dir.file("ok.log")).find("OK: 10 devices") != std::string::npos);

  auto bad = dir.write("bad.yaml", "timeline:\n  - at: 1s\n    drop: {share: 2}\n");
  Process no({kSim, "--scenario", bad}, dir.file("bad.log"));
  CHECK(no.wait_exit(5000ms) == 2);
  CHECK(read_file(dir.file("bad.log")).find("bad.yaml:3: share:") != std::string::npos);

  Process unknown({kSim, "--colour", "red"}, dir.file("unknown.log"));
  CHECK(unknown.wait_exit(5000ms) == 2);
  CHECK(read_file(dir.file("unknown.log")).find("unknown option 'colour'") != std::string::npos);

  // More devices than file descriptors a process may have: a clear error, not a connect storm.
  Process many({kSim, "--devices", "5000000", "--check"}, dir.file("many.log"));
  CHECK(many.wait_exit(10000ms) == 2);
  CHECK(read_file(dir.file("many.log")).find("--processes") != std::string::npos);
}

TEST_CASE("200 devices: births, a 30% drop fires last-wills, tight loops return, stuck do not") {
  Mosquitto broker;
  broker.start();
  TempDir dir;
  auto obs_path = dir.file("observed.txt");
  auto sub = observer(broker, obs_path, "devices/+/status");

  auto scenario = dir.write("drop.yaml", R"(v: 1
options:
  devices: 200
  behaviour: "well_behaved:40,tight_loop:20,stuck:20,slow_joiner:20"
  slow_joiner_delay: 60s-120s
  heartbeat: 1s
  connect_rate: 2000/s
timeline:
  - at: 2s
    drop: {share: 0.3}
  - at: 6s
    end:
)");
  auto events_path = dir.file("events.jsonl");
  Process sim({kSim, "--broker", "127.0.0.1:" + std::to_string(broker.port()), "--scenario",
               scenario, "--out", events_path, "--progress", "0"},
              dir.file("sim.log"));

  // Births: every device's retained "online" reaches an independent subscriber.
  REQUIRE(wait_for([&] { return observed(obs_path).size() == 200; }, 8000ms));
  for (auto& [id, states] : observed(obs_path)) CHECK(states.front() == "online");

  // The drop: 60 connections closed without DISCONNECT.
  std::map<std::string, std::string> dropped;  // id -> behaviour
  REQUIRE(wait_for(
      [&] {
        dropped.clear();
        for (auto& e : read_events(events_path))
          if (e["event"] == "disconnect" && e["cause"] == "drop")
            dropped[e["device"]] = e["behaviour"];
        return dropped.size() == 60;
      },
      6000ms));
  std::map<std::string, int> by_behaviour;
  for (auto& [id, b] : dropped) ++by_behaviour[b];
  REQUIRE(by_behaviour["tight_loop"] > 0);
  REQUIRE(by_behaviour["stuck"] > 0);

  // Last-wills: the broker published "offline" for every dropped device; tight loops and
  // well-behaved devices come back online, stuck and slow joiners stay offline.
  auto settled = [&] {
    auto obs = observed(obs_path);
    for (auto& [id, b] : dropped) {
      auto& s = obs[id];
      if (std::find(s.begin(), s.end(), "offline") == s.end()) return false;
      bool back = b == "tight_loop" || b == "well_behaved";
      if (last_state(obs, id) != (back ? "online" : "offline")) return false;
    }
    return true;
  };
  CHECK(wait_for(settled, 3500ms));
  auto obs = observed(obs_path);
  for (auto& [id, b] : dropped) {
    CAPTURE(id);
    CAPTURE(b);
    if (b == "stuck" || b == "slow_joiner") CHECK(last_state(obs, id) == "offline");
    if (b == "tight_loop") CHECK(obs[id] == std::vector<std::string>{"online", "offline", "online"});
  }
  // Devices not dropped never went offline while the fleet ran.
  for (auto& [id, states] : obs)
    if (!dropped.count(id)) CHECK(states == std::vector<std::string>{"online"});

  REQUIRE(sim.wait_exit(10000ms) == 0);
  auto events = read_events(events_path);
  std::map<std::string, int> connects_after_drop;
  std::size_t devices = 0;
  bool after = false;
  json summary;
  for (auto& e : events) {
    if (e["event"] == "device") ++devices;
    if (e["event"] == "action" && e["action"] == "drop") {
      after = true;
      CHECK(e["affected"] == 60);
    }
    if (after && e["event"] == "connect") ++connects_after_drop[e["device"]];
    if (e["event"] == "summary") summary = e;
  }
  CHECK(devices == 200);
  for (auto& [id, b] : dropped) {
    CAPTURE(id);
    if (b == "stuck" || b == "slow_joiner") CHECK(connects_after_drop[id] == 0);
    else CHECK(connects_after_drop[id] == 1);
  }
  REQUIRE(summary.is_object());
  CHECK(summary["max_online"] == 200);
  CHECK(summary["protocol_errors"] == 0);
  CHECK(summary["disconnects"] == 60);
  CHECK(summary["gave_up"] == by_behaviour["stuck"]);
  // Births (QoS 1) were all acknowledged; heartbeats ran (1 s for ~6 s).
  CHECK(summary["pubacks"].get<int>() >= summary["connects"].get<int>());
  CHECK(summary["publishes"].get<int>() > 3 * 200);
}

namespace {

// The truth of the broker-restart run so far, from the sim's JSON lines.
struct RestartRun {
  pid_t restarted = 0;
  std::map<std::string, std::string> behaviour;
  std::map<std::string, int> lost, back, attempts;
  std::map<std::string, bool> gave_up;
  std::vector<std::string> errors;
  bool signal_sent = false;

  explicit RestartRun(const std::vector<json>& events) {
    int phase = 0;  // 0 before the kill, 1 broker down, 2 after the start
    for (auto& e : events) {
      if (e["event"] == "device") behaviour[e["device"]] = e["behaviour"];
      if (e["event"] == "action" && e.contains("error")) errors.push_back(e.dump());
      if (e["event"] == "action" && e["action"] == "signal") {
        signal_sent = true;
        phase = 1;
      }
      if (e["event"] == "action" && e["action"] == "start") {
        restarted = e["pid"].get<pid_t>();
        phase = 2;
      }
      if (phase >= 1 && e["event"] == "disconnect") {
        ++lost[e["device"]];
        gave_up[e["device"]] = e["reconnect_in_ms"].is_null();
      }
      if (phase == 2 && e["event"] == "connect") {
        ++back[e["device"]];
        attempts[e["device"]] = e["attempts"];
      }
    }
  }
  bool everyone_back() const {
    if (behaviour.size() != 60) return false;
    for (auto& [id, b] : behaviour)
      if (b != "stuck" && !back.count(id)) return false;
    return true;
  }
};

}  // namespace

TEST_CASE("broker killed and started by the timeline: tight loops hammer, stuck devices stay away") {
  Mosquitto broker;
  broker.start();
  TempDir dir;
  auto marker = dir.file("exec-ran");
  auto scenario = dir.write("restart.yaml", R"(v: 1
options:
  devices: 60
  behaviour: "well_behaved:50,tight_loop:25,stuck:25"
  backoff_initial: 1s
  backoff_max: 8s
  tight_loop_delay: 50ms
  heartbeat: 500ms
timeline:
  - at: 500ms
    exec: "touch )" + marker + R"("
  - at: 1s
    signal: {target: broker, signal: KILL}
  - at: 3500ms
    start: {target: broker}
)");
  auto events_path = dir.file("events.jsonl");
  Process sim({kSim, "--broker", "127.0.0.1:" + std::to_string(broker.port()), "--scenario",
               scenario, "--out", events_path, "--progress", "0", "--broker-pid",
               std::to_string(broker.pid()), "--broker-cmd",
               find_program("mosquitto") + " -c " + broker.dir().file("mosquitto.conf")},
              dir.file("sim.log"));
  // The broker the sim started outlives the sim: kill it however this test ends.
  pid_t restarted = 0;
  struct KillAtExit {
    pid_t& pid;
    ~KillAtExit() {
      if (pid > 0) ::kill(pid, SIGKILL);
    }
  } kill_at_exit{restarted};

  // Everyone but the stuck devices comes back once the broker is up (backoff: by ~4.5 s after
  // the start; a starved CPU may take longer, hence the wait rather than a fixed end).
  bool back = wait_for(
      [&] {
        RestartRun run(read_events(events_path));
        restarted = run.restarted;
        return run.everyone_back();
      },
      20000ms, 100ms);
  // Stuck devices had the same time as the well-behaved ones to (wrongly) come back.
  sim.stop(SIGTERM, 5000ms);
  CHECK(back);
  CHECK(::access(marker.c_str(), F_OK) == 0);

  RestartRun run(read_events(events_path));
  restarted = run.restarted;
  REQUIRE(run.restarted > 0);
  CHECK(run.signal_sent);
  CHECK(run.errors.empty());
  REQUIRE(run.behaviour.size() == 60);
  CHECK(run.lost.size() == 60);  // every session was lost when the broker died
  for (auto& [id, b] : run.behaviour) {
    CAPTURE(id);
    CAPTURE(b);
    if (b == "stuck") {
      CHECK(run.gave_up[id]);
      CHECK(run.back[id] == 0);
    } else {
      CHECK_FALSE(run.gave_up[id]);
      CHECK(run.back[id] == 1);
    }
    // Incident 000: in the 2.5 s the broker is down a tight loop retries every <= 50 ms (dozens
    // of attempts; >= 6 even on a starved CPU). Backoff (0.5-1 s, 1-2 s, 2-4 s, ...) gets in on
    // its third or fourth attempt; a slow machine only makes that fewer.
    if (b == "tight_loop") CHECK(run.attempts[id] >= 6);
    if (b == "well_behaved") CHECK(run.attempts[id] <= 4);
  }
}
