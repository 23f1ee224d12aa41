// HA pair harness (issue 13): a real etcd (Debian etcd-server) on free loopback ports with its own
// temp data dir, two real presenced with an `ha:` section, a real mosquitto, presence-sim and the
// validating mock PagerDuty of the alerting harness. Everything is stopped by pid; the presenced
// process itself is test/support/presenced.h, like every integration test's.
#pragma once

#include <signal.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test/integration/alerting/harness.h"

namespace presence::hatest {

using namespace std::chrono_literals;
using atest::MockPagerDuty;
using atest::Sim;
using atest::dump;
using test::wait_for;

class Etcd {
 public:
  Etcd() : client_(test::free_tcp_port()), peer_(test::free_tcp_port()) {}
  ~Etcd() { stop(SIGKILL); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(client_); }

  void start() {
    const std::string bin = test::find_program("etcd");
    if (bin.empty()) throw std::runtime_error("etcd not installed (apt-get install etcd-server)");
    const std::string c = url();
    const std::string p = "http://127.0.0.1:" + std::to_string(peer_);
    proc_ = test::Process({bin, "--name", "default", "--data-dir", dir_.file("data"),
                           "--listen-client-urls", c, "--advertise-client-urls", c,
                           "--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
                           "--initial-cluster", "default=" + p, "--log-level", "warn"},
                          dir_.file("etcd.log"));
    if (!wait_for([&] { return ready() || !proc_.running(); }, 30s) || !proc_.running())
      throw std::runtime_error("etcd did not start; log:\n" + test::read_file(dir_.file("etcd.log")));
  }
  void stop(int sig = SIGTERM) { proc_.stop(sig, 5000ms); }
  bool ready() {
    if (!test::tcp_port_open(client_)) return false;
    httplib::Client cli("127.0.0.1", client_);
    cli.set_connection_timeout(1s);
    auto r = cli.Get("/health");
    return r && r->status == 200 && r->body.find("true") != std::string::npos;
  }

 private:
  test::TempDir dir_;
  int client_, peer_;
  test::Process proc_;
};

struct HaOptions {
  std::string lease_ttl = "2s";
  std::string fail_open_after = "6s";
  std::string peer_down_after = "60s";
};

// One instance of the pair: presenced with an `ha:` section and the mock PagerDuty; the process,
// its HTTP helpers and its safe stop are test/support/presenced.h (one copy for every harness).
class HaPresenced : public test::PresencedProcess {
 public:
  HaPresenced(const std::string& name, int broker_port, const std::string& pd_url,
              const std::string& etcd_url, HaOptions o = {})
      : name_(name) {
    std::string y;
    y += "mqtt:\n  uri: tcp://127.0.0.1:" + std::to_string(broker_port) + "\n";
    y += "  client_id: presenced-ha-" + name + "-" + std::to_string(::getpid()) + "\n";
    y += "  keepalive: 5s\n  reconnect:\n    min_backoff: 100ms\n    max_backoff: 500ms\n";
    y += "presence:\n  offline_grace: 2s\n  online_stable_for: 1s\n";
    y += "  restart_grace_min: 1s\n  restart_grace_settle: 500ms\n  restart_grace_max: 3s\n";
    y += "http:\n  listen: 127.0.0.1:" + std::to_string(http_port()) + "\n";
    y += "store:\n  dir: " + file("store") + "\n  snapshot_interval: 500ms\n";
    y += "output:\n  coalesce_interval: 50ms\n  publish_rate: 10000\n";
    y += "alerts:\n  pagerduty:\n    enabled: true\n    url: " + pd_url +
         "\n    routing_key: " + atest::kRoutingKey + "\n";
    y += "  policy:\n    alert_after: 1s\n    group_wait: 500ms\n    group_interval: 1s\n"
         "    incident_open_floor: 20\n    incident_open_fraction: 0.5\n";
    y += "ha:\n  endpoints: [" + etcd_url + "]\n  name: " + name + "\n  lease_ttl: " +
         o.lease_ttl + "\n  fail_open_after: " + o.fail_open_after +
         "\n  peer_down_after: " + o.peer_down_after + "\n";
    write_config(y);
  }

  const std::string& name() const { return name_; }
  // Ready within 15 s (an instance may wait for etcd's first answer). Every run of the instance
  // appends to the same log (test::Process opens it O_APPEND), so a killed run's lines are kept;
  // a marker line says where each run starts and how it ended.
  void start() {
    mark("start");
    test::PresencedProcess::start("/readyz", 15s, "presenced " + name_);
    mark("ready, pid " + std::to_string(pid()));
  }
  // Hides the base stop() to mark the log (pid, signal).
  int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = 10000ms) {
    const pid_t p = pid();
    const int status = test::PresencedProcess::stop(sig, timeout);
    if (status != -1) mark("stopped pid " + std::to_string(p) + " with signal " + std::to_string(sig));
    return status;
  }
  // The lines of every run that tell what happened to pages (the harness's markers, the HA
  // node's election, hand-off, adoption and sends, alert decisions, device transitions, snapshot
  // restores, restart grace), each prefixed with this instance's name: printed by a test when it
  // fails.
  std::string story() const {
    std::string out;
    std::istringstream in(log());
    for (std::string line; std::getline(in, line);) {
      bool keep = line.find(" device ") != std::string::npos && line.find(" -> ") != std::string::npos;
      for (const char* word : {"harness:", "ha:", "alert:", "alerts:", "snapshot:", "restart grace"})
        keep = keep || line.find(word) != std::string::npos;
      if (keep) out += name_ + ": " + line + "\n";
    }
    return out;
  }

  bool leader() { return metric("presence_ha_role{role=\"leader\"}") == 1; }
  // The device's state in this instance's view ("online", "offline", ...; "" when unknown).
  std::string state_of(const std::string& id) {
    const auto j = nlohmann::json::parse(body("/v1/devices/" + id), nullptr, false);
    return j.is_object() && j.contains("state") && j["state"].is_string()
               ? j["state"].get<std::string>()
               : std::string();
  }
  bool follower() { return metric("presence_ha_role{role=\"follower\"}") == 1; }
  double online() { return metric("presence_devices{state=\"online\"}"); }

 private:
  void mark(const std::string& what) const {
    std::ofstream(log_path(), std::ios::app) << "=== test harness: presenced " << name_ << ": "
                                             << what << " ===\n";
  }
  std::string name_;
};

// Exactly one of the two leads (the other follows); returns it, or nullptr after the timeout.
inline HaPresenced* wait_leader(HaPresenced& a, HaPresenced& b, std::chrono::milliseconds timeout) {
  HaPresenced* l = nullptr;
  wait_for(
      [&] {
        const bool la = a.running() && a.leader(), lb = b.running() && b.leader();
        if (la && !lb && (!b.running() || b.follower())) l = &a;
        else if (lb && !la && (!a.running() || a.follower())) l = &b;
        else l = nullptr;
        return l != nullptr;
      },
      timeout, 100ms);
  return l;
}

// What every pair test starts from: a broker, etcd and the mock PagerDuty running, and the two
// instances "a" and "b" configured against them but not started (a test may start one only).
// A doctest fixture: TEST_CASE_FIXTURE(Pair, "...") { a.start(); b.start(); ... }.
class Pair {
 public:
  explicit Pair(HaOptions o = {})
      : a("a", started(broker), pd.url(), started(etcd), o),
        b("b", broker.port(), pd.url(), etcd.url(), o) {}

  // Starts both and waits up to 15 s for exactly one leader: the leader, or nullptr.
  HaPresenced* start_both() {
    a.start();
    b.start();
    return wait_leader(a, b, 15s);
  }

  // Members go in reverse order: the instances before the mock, etcd and the broker they use.
  test::Mosquitto broker;
  Etcd etcd;
  MockPagerDuty pd;
  HaPresenced a;
  HaPresenced b;

 private:
  static int started(test::Mosquitto& m) {
    m.start();
    return m.port();
  }
  static std::string started(Etcd& e) {
    e.start();
    return e.url();
  }
};

}  // namespace presence::hatest
