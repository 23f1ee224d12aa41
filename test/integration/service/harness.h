// Integration harness for presenced (issue 3): a real presenced process against a real
// mosquitto (test/support), real MQTT clients (Paho C++ devices and an observer of the retained
// output, mosquitto_sub as a device with a last-will), and HTTP against /metrics.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include <httplib.h>
#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include "test/support/process.h"

namespace presence::itest {

using namespace std::chrono_literals;
using presence::test::wait_for;

inline std::string unique_suffix() {
  static std::atomic<int> n{0};
  return std::to_string(::getpid()) + "-" + std::to_string(++n);
}

// Subscribes to presence/# and records every state each device is published with.
class Observer {
 public:
  explicit Observer(const std::string& uri)
      : client_(uri, "observer-" + unique_suffix()) {
    client_.set_message_callback([this](mqtt::const_message_ptr m) { on_message(*m); });
    client_.set_connected_handler([this](const std::string&) {
      try {
        client_.subscribe("presence/#", 1);
      } catch (...) {
      }
    });
    auto opts = mqtt::connect_options_builder()
                    .clean_session(true)
                    .automatic_reconnect(100ms, 500ms)
                    .keep_alive_interval(5s)
                    .finalize();
    client_.connect(opts)->wait();
  }
  // Paho delivers on its own thread, and presence/# is never quiet (presenced's probes every
  // 500 ms): stop the callbacks and let one in flight finish before the members it uses are gone
  // (a delivery during teardown crashed service_reconcile_test once).
  ~Observer() {
    try {
      client_.disconnect()->wait_for(2s);
    } catch (...) {
    }
    client_.disable_callbacks();
    wait_for([&] { return in_flight_.load() == 0; }, 2s, 5ms);
  }

  std::string state(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = latest_.find(id);
    return it == latest_.end() ? std::string() : it->second.value("state", "");
  }
  nlohmann::json latest(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = latest_.find(id);
    return it == latest_.end() ? nlohmann::json() : it->second;
  }
  std::vector<std::string> history(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return history_[id];
  }
  // Devices that were ever published in `state`.
  std::vector<std::string> ever(const std::string& state) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [id, h] : history_)
      for (const auto& s : h)
        if (s == state) {
          out.push_back(id);
          break;
        }
    return out;
  }
  std::size_t count_in(const std::string& state) {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto& [id, j] : latest_) n += j.value("state", "") == state ? 1 : 0;
    return n;
  }
  nlohmann::json fleet() {
    std::lock_guard<std::mutex> lock(mu_);
    return fleet_;
  }
  bool wait_state(const std::string& id, const std::string& state,
                  std::chrono::milliseconds timeout = 10s) {
    return wait_for([&] { return this->state(id) == state; }, timeout);
  }

 private:
  void on_message(const mqtt::message& m) {
    ++in_flight_;
    struct Done {
      std::atomic<int>& n;
      ~Done() { --n; }
    } done{in_flight_};
    const std::string& topic = m.get_topic();
    auto j = nlohmann::json::parse(m.get_payload_str(), nullptr, false);
    if (j.is_discarded()) return;
    std::lock_guard<std::mutex> lock(mu_);
    static const std::string prefix = "presence/devices/";
    if (topic.rfind(prefix, 0) == 0) {
      const std::string id = topic.substr(prefix.size());
      latest_[id] = j;
      auto& h = history_[id];
      const std::string s = j.value("state", "");
      if (h.empty() || h.back() != s) h.push_back(s);
    } else if (topic == "presence/fleet") {
      fleet_ = j;
    }
  }

  mqtt::async_client client_;
  std::atomic<int> in_flight_{0};  // on_message calls running
  std::mutex mu_;
  std::map<std::string, nlohmann::json> latest_;
  std::map<std::string, std::vector<std::string>> history_;
  nlohmann::json fleet_;
};

// A device as Paho sees it: retained last-will "offline", retained birth "online" on every
// (re)connect, automatic reconnect with a per-device first retry (jitter across the fleet).
class PahoDevice {
 public:
  PahoDevice(const std::string& uri, std::string id, std::chrono::milliseconds first_retry)
      : id_(std::move(id)), client_(uri, id_) {
    client_.set_connected_handler([this](const std::string&) {
      try {
        client_.publish("devices/" + id_ + "/status", "online", 1, true);
      } catch (...) {
      }
    });
    opts_ = mqtt::connect_options_builder()
                .clean_session(true)
                .keep_alive_interval(5s)
                .automatic_reconnect(first_retry, 2s)
                .will(mqtt::message("devices/" + id_ + "/status", "offline", 1, true))
                .finalize();
  }
  ~PahoDevice() {
    try {
      if (client_.is_connected()) client_.disconnect()->wait_for(1s);
    } catch (...) {
    }
  }
  mqtt::token_ptr connect() { return client_.connect(opts_); }
  bool connected() const { return client_.is_connected(); }
  void heartbeat() {
    try {
      if (client_.is_connected()) client_.publish("devices/" + id_ + "/heartbeat", "1", 0, false);
    } catch (...) {
    }
  }
  const std::string& id() const { return id_; }

 private:
  std::string id_;
  mqtt::async_client client_;
  mqtt::connect_options opts_;
};

// A device whose crash fires its last-will: mosquitto_sub with --will-*, killed with SIGKILL.
inline test::Process will_device(int port, const std::string& id) {
  return test::Process({test::find_program("mosquitto_sub"), "-h", "127.0.0.1", "-p",
                        std::to_string(port), "-i", id, "-k", "5", "-t", "devices/" + id + "/cmd",
                        "--will-topic", "devices/" + id + "/status", "--will-payload", "offline",
                        "--will-retain", "--will-qos", "1"});
}

inline void mqtt_pub(int port, const std::string& topic, const std::string& payload,
                     bool retain = false) {
  std::vector<std::string> argv{test::find_program("mosquitto_pub"), "-h", "127.0.0.1", "-p",
                                std::to_string(port), "-q", "1", "-t", topic, "-m", payload};
  if (retain) argv.push_back("-r");
  test::Process p(argv);
  // Generous: the machine may be busy; a publish that never happened must fail loudly here, not
  // as a confusing missing state later.
  const int rc = p.wait_exit(20000ms);
  if (rc != 0)
    throw std::runtime_error("mosquitto_pub to " + topic + " failed (" + std::to_string(rc) + ")");
}

struct PresencedOptions {
  std::string offline_grace = "1s";
  std::string restart_grace_min = "2s";
  std::string restart_grace_settle = "1s";
  std::string restart_grace_max = "15s";
  std::string heartbeat_timeout_floor = "1s";
  std::string heartbeat_default_interval = "300ms";
  bool clean_session = true;
  std::string uri;         // default tcp://127.0.0.1:<broker port>
  std::string mqtt_extra;  // more keys inside "mqtt:", each line indented by two spaces
  std::string extra;       // more YAML appended verbatim
  std::string http_extra;  // more keys inside "http:", each line indented by two spaces
  std::string presence_extra;  // more keys inside "presence:", each line indented by two spaces
};

class Presenced {
 public:
  Presenced(int broker_port, PresencedOptions o = {})
      : broker_port_(broker_port), http_port_(test::free_tcp_port()), opts_(std::move(o)),
        client_id_("presenced-" + unique_suffix()) {
    write_config();
  }

  static std::string binary() { return std::string(PRESENCE_BINARY_DIR) + "/presence/app/presenced"; }
  const std::string& config_path() const { return config_; }
  const std::string& log_path() const { return log_; }
  int http_port() const { return http_port_; }
  std::string log() const { return test::read_file(log_); }

  void write_config(const std::string& more = {}) {
    std::string y;
    y += "mqtt:\n";
    y += "  uri: " +
         (opts_.uri.empty() ? "tcp://127.0.0.1:" + std::to_string(broker_port_) : opts_.uri) +
         "\n";
    y += "  client_id: " + client_id_ + "\n";
    y += std::string("  clean_session: ") + (opts_.clean_session ? "true" : "false") + "\n";
    y += "  reconnect:\n    min_backoff: 100ms\n    max_backoff: 1s\n";
    y += opts_.mqtt_extra;
    y += "presence:\n";
    y += "  offline_grace: " + opts_.offline_grace + "\n";
    y += "  online_stable_for: 1s\n";
    y += "  heartbeat_timeout_floor: " + opts_.heartbeat_timeout_floor + "\n";
    y += "  heartbeat_default_interval: " + opts_.heartbeat_default_interval + "\n";
    y += "  restart_grace_min: " + opts_.restart_grace_min + "\n";
    y += "  restart_grace_settle: " + opts_.restart_grace_settle + "\n";
    y += "  restart_grace_max: " + opts_.restart_grace_max + "\n";
    y += opts_.presence_extra;
    y += "http:\n  listen: 127.0.0.1:" + std::to_string(http_port_) + "\n";
    y += opts_.http_extra;
    y += "store:\n  dir: " + dir_.file("store") + "\n";
    y += "log:\n  level: debug\n";
    y += more.empty() ? "output:\n  coalesce_interval: 50ms\n  publish_rate: 5000\n" : more;
    y += opts_.extra;
    config_ = dir_.write("presenced.yaml", y);
  }

  // Starts without waiting for readiness.
  void launch() { proc_ = test::Process({binary(), "--config", config_}, log_); }
  // Starts and waits until /readyz says ready (connected, subscribed, not blind).
  void start() {
    launch();
    if (!wait_for([&] { return status("/readyz") == 200 || !proc_.running(); }, 10s) ||
        !proc_.running())
      throw std::runtime_error("presenced did not become ready; log:\n" + log());
  }
  int stop(int sig = SIGTERM) { return proc_.stop(sig, 10000ms); }
  bool running() { return proc_.running(); }
  void signal(int sig) { proc_.signal(sig); }
  int wait_exit(std::chrono::milliseconds timeout) { return proc_.wait_exit(timeout); }

  int status(const std::string& path) {
    httplib::Client cli("127.0.0.1", http_port_);
    cli.set_connection_timeout(1s);
    cli.set_read_timeout(2s);
    auto res = cli.Get(path.c_str());
    return res ? res->status : -1;
  }
  std::string body(const std::string& path) {
    httplib::Client cli("127.0.0.1", http_port_);
    cli.set_connection_timeout(1s);
    cli.set_read_timeout(2s);
    auto res = cli.Get(path.c_str());
    return res ? res->body : std::string();
  }
  // Prometheus text -> {"name{labels}": value}; -1 when absent.
  double metric(const std::string& series) {
    const std::string text = body("/metrics");
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(pos, end - pos);
      pos = end + 1;
      if (line.empty() || line[0] == '#') continue;
      const auto sp = line.rfind(' ');
      if (sp != std::string::npos && line.substr(0, sp) == series)
        return std::stod(line.substr(sp + 1));
    }
    return -1;
  }

 private:
  test::TempDir dir_;
  int broker_port_;
  int http_port_;
  PresencedOptions opts_;
  std::string client_id_;
  std::string config_;
  std::string log_ = dir_.file("presenced.log");
  test::Process proc_;
};

}  // namespace presence::itest
