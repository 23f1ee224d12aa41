// End-to-end alerting harness (issue 5 must-show): a real mosquitto on a free port, a real
// presenced process (test/support/presenced.h), presence-sim as the fleet, and a mock PagerDuty
// (test/support/mock_http) that validates every field of every Events API v2 request it receives.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <regex>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <set>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "test/support/mock_http.h"
#include "test/support/presenced.h"
#include "test/support/process.h"

namespace presence::atest {

using namespace std::chrono_literals;
using presence::test::wait_for;

inline const std::string kRoutingKey = "0123456789abcdef0123456789abcdef";  // 32 characters

struct PdEvent {
  std::string action;  // trigger | resolve
  std::string dedup_key;
  std::string cls;  // payload.class (triggers)
  std::string summary;
  nlohmann::json details;
  std::int64_t received_ms = 0;  // wall clock, when the mock accepted it
};

// Mock PagerDuty Events API v2. Every request is validated against the documented schema; a
// violation is recorded in errors(). Responses: scripted statuses first, then 202.
class MockPagerDuty {
 public:
  MockPagerDuty() {
    server_.set_handler([this](const test::RecordedRequest& r) { return handle(r); });
  }
  std::string url() const { return server_.url("/v2/enqueue"); }

  void script(std::vector<int> statuses) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int s : statuses) script_.push_back(s);
  }

  // While down, every request gets 503 (a PagerDuty outage); scripted statuses wait.
  void set_down(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }

  // Accepted (2xx) events only, in arrival order.
  std::vector<PdEvent> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return accepted_;
  }
  std::vector<std::string> errors() const {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }
  std::size_t requests() const { return server_.count(); }

  std::size_t count(const std::string& action, const std::string& key_prefix) const {
    std::size_t n = 0;
    for (const auto& e : events())
      if (e.action == action && e.dedup_key.rfind(key_prefix, 0) == 0) ++n;
    return n;
  }
  // Per dedup_key, the accepted actions must alternate trigger, resolve, trigger...: a duplicate
  // (same action twice in a row) is returned as "key: action x2".
  std::vector<std::string> duplicates() const {
    std::map<std::string, std::string> last;
    std::vector<std::string> dups;
    for (const auto& e : events()) {
      auto& l = last[e.dedup_key];
      if (l == e.action) dups.push_back(e.dedup_key + ": " + e.action + " x2");
      l = e.action;
    }
    return dups;
  }
  bool wait_events(const std::string& action, const std::string& prefix, std::size_t n,
                   std::chrono::milliseconds timeout) const {
    return wait_for([&] { return count(action, prefix) >= n; }, timeout, 50ms);
  }

 private:
  test::MockResponse handle(const test::RecordedRequest& r) {
    int status = 202;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (down_) {
        status = 503;
      } else if (!script_.empty()) {
        status = script_.front();
        script_.pop_front();
      }
    }
    validate(r.body, status);
    if (status == 400) return {400, R"({"status":"invalid event","message":"Event object is invalid"})"};
    if (status == 429) return {429, R"({"status":"throttle"})", {{"Retry-After", "1"}}};
    if (status >= 500) return {status, "oops"};
    return {202, R"({"status":"success","message":"Event processed"})"};
  }

  void fail(const std::string& what, const std::string& body) {
    errors_.push_back(what + " in " + body.substr(0, 300));
  }

  void validate(const std::string& body, int status) {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(body);
    } catch (...) {
      fail("not JSON", body);
      return;
    }
    if (j.value("routing_key", "") != kRoutingKey) fail("routing_key", body);
    const std::string action = j.value("event_action", "");
    if (action != "trigger" && action != "resolve") fail("event_action", body);
    const std::string key = j.value("dedup_key", "");
    if (key.empty() || key.size() > 255) fail("dedup_key", body);
    PdEvent e;
    e.received_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    e.action = action;
    e.dedup_key = key;
    if (action == "trigger") {
      if (!j.contains("payload") || !j["payload"].is_object()) {
        fail("payload", body);
        return;
      }
      const auto& p = j["payload"];
      const std::string summary = p.value("summary", "");
      if (summary.empty() || summary.size() > 1024) fail("payload.summary", body);
      if (p.value("source", "").empty()) fail("payload.source", body);
      static const std::set<std::string> kSev = {"critical", "error", "warning", "info"};
      if (kSev.count(p.value("severity", "")) == 0) fail("payload.severity", body);
      static const std::regex kIso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d))");
      if (!std::regex_match(p.value("timestamp", ""), kIso)) fail("payload.timestamp", body);
      if (p.value("component", "").empty()) fail("payload.component", body);
      if (p.contains("group") && (!p["group"].is_string() || p["group"].get<std::string>().empty()))
        fail("payload.group", body);
      if (p.value("class", "").empty()) fail("payload.class", body);
      if (!p.contains("custom_details") || !p["custom_details"].is_object())
        fail("payload.custom_details", body);
      e.cls = p.value("class", "");
      e.summary = summary;
      if (p.contains("custom_details")) e.details = p["custom_details"];
    } else if (j.contains("payload")) {
      fail("resolve with payload", body);
    }
    if (status >= 200 && status < 300) accepted_.push_back(std::move(e));
  }

  test::MockHttpServer server_;
  mutable std::mutex mu_;
  std::deque<int> script_;
  bool down_ = false;
  std::vector<PdEvent> accepted_;
  std::vector<std::string> errors_;
};

struct PresencedOptions {
  std::string mode = "presence";
  std::string alert_after = "1s";
  std::string group_wait = "500ms";
  std::string group_interval = "1s";
  std::string blind_alert_after = "30s";
  std::string incident_window = "10s";
  std::string incident_open_floor = "20";
  std::string incident_open_fraction = "0.1";
  std::string incident_stable_for = "3s";
  std::string straggler_grace = "3s";
  std::string offline_grace = "2s";
  std::string online_stable_for = "1s";
  std::string restart_grace_min = "2s";
  std::string restart_grace_settle = "1s";
  std::string restart_grace_max = "8s";
  std::string snapshot_interval = "500ms";
  // More alerts.pagerduty keys, indented 4. The mock PagerDuty has no rate limit, and the naive
  // baseline's page-per-device storm would otherwise wait for the real one (120 a minute).
  std::string pagerduty_extra = "    rate_limit_events: 1000000\n";
  std::string extra;
};

// presenced with a PagerDuty sink pointed at the mock and short alerting windows; the process, its
// HTTP helpers and its safe stop are test/support/presenced.h (one copy for every harness).
class Presenced : public test::PresencedProcess {
 public:
  Presenced(int broker_port, const std::string& pd_url, PresencedOptions o = {}) {
    std::string y;
    y += "mqtt:\n  uri: tcp://127.0.0.1:" + std::to_string(broker_port) + "\n";
    y += "  client_id: presenced-alerting-" + std::to_string(::getpid()) + "\n";
    y += "  keepalive: 5s\n  reconnect:\n    min_backoff: 100ms\n    max_backoff: 500ms\n";
    y += "presence:\n  offline_grace: " + o.offline_grace +
         "\n  online_stable_for: " + o.online_stable_for + "\n";
    y += "  restart_grace_min: " + o.restart_grace_min + "\n";
    y += "  restart_grace_settle: " + o.restart_grace_settle + "\n";
    y += "  restart_grace_max: " + o.restart_grace_max + "\n";
    y += "http:\n  listen: 127.0.0.1:" + std::to_string(http_port()) + "\n";
    y += "store:\n  dir: " + store_dir() + "\n  snapshot_interval: " +
         o.snapshot_interval + "\n";
    y += "output:\n  coalesce_interval: 50ms\n  publish_rate: 10000\n";
    y += "alerts:\n  pagerduty:\n    enabled: true\n    url: " + pd_url +
         "\n    routing_key: " + kRoutingKey + "\n" + o.pagerduty_extra;
    y += "  policy:\n    alert_after: " + o.alert_after + "\n    group_wait: " + o.group_wait +
         "\n    group_interval: " + o.group_interval +
         "\n    blind_alert_after: " + o.blind_alert_after +
         "\n    incident_window: " + o.incident_window +
         "\n    incident_open_floor: " + o.incident_open_floor +
         "\n    incident_open_fraction: " + o.incident_open_fraction +
         "\n    incident_stable_for: " + o.incident_stable_for +
         "\n    straggler_grace: " + o.straggler_grace + "\n";
    y += o.extra;
    y += "mode: " + o.mode + "\n";
    write_config(y);
  }

  std::string store_dir() const { return file("store"); }
  double online() { return metric("presence_devices{state=\"online\"}"); }
};

// presence-sim as the fleet: N devices on the broker, heartbeats off (the tests are about
// connections), fast well-behaved reconnects, and a timeline.
class Sim {
 public:
  Sim(int broker_port, int devices, const std::string& timeline, const std::string& seed = "1",
      const std::string& heartbeat = "1s") {
    std::string y = "v: 1\noptions:\n  devices: " + std::to_string(devices) +
                    "\n  heartbeat: " + heartbeat + "\n  behaviour: \"well_behaved:100\"\n"
                    "  backoff_initial: 500ms\n  backoff_max: 1s\n  connect_rate: 2000/s\n"
                    "  keepalive: 30s\n  progress: 0\ntimeline:\n" +
                    timeline + "  - at: 10m\n    end: {}\n";
    const std::string scenario = dir_.write("scenario.yaml", y);
    out_ = dir_.file("truth.jsonl");
    proc_ = test::Process({std::string(PRESENCE_BINARY_DIR) + "/presence/tools/sim/presence-sim",
                           "--broker", "127.0.0.1:" + std::to_string(broker_port), "--scenario",
                           scenario, "--seed", seed, "--out", out_},
                          dir_.file("sim.log"));
  }
  std::string log() const { return test::read_file(dir_.file("sim.log")); }
  std::string truth() const { return test::read_file(out_); }
  bool running() { return proc_.running(); }
  void stop() { proc_.stop(SIGTERM, 3000ms); }

 private:
  test::TempDir dir_;
  std::string out_;
  test::Process proc_;
};

inline std::string dump(const std::vector<PdEvent>& events) {
  std::string s;
  for (const auto& e : events) s += e.action + " " + e.dedup_key + " " + e.cls + " | " + e.summary.substr(0, 120) + "\n";
  return s;
}

}  // namespace presence::atest
