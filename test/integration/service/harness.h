// Integration harness for presenced (issue 3): a real presenced process against a real
// mosquitto (test/support), real MQTT clients (Paho C++ devices and an observer of the retained
// output, mosquitto_sub as a device with a last-will), and HTTP against /metrics. The process and
// the observer are test/support's (presenced.h, observer.h), shared with every integration test.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <httplib.h>
#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

#include "test/support/observer.h"
#include "test/support/presenced.h"
#include "test/support/process.h"

namespace presence::itest {

using namespace std::chrono_literals;
using presence::test::wait_for;

using presence::test::Observer;  // test/support/observer.h
using presence::test::unique_suffix;

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

// mosquitto.conf lines that load this build's broker-ext as node `node`, deferring basic auth
// (the plugin only watches): for test::Mosquitto's extra_conf.
inline std::string broker_ext_conf(const std::string& node = "it-node") {
  return std::string("plugin ") + PRESENCE_BINARY_DIR + "/broker-ext/mosquitto_presence.so\n" +
         "plugin_opt_node " + node + "\nplugin_opt_basic_auth defer\n";
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

// presenced with a config for these tests (short graces, debug log); the process, its HTTP
// helpers and its safe stop are test/support/presenced.h, shared with the alerting and HA
// harnesses.
class Presenced : public test::PresencedProcess {
 public:
  Presenced(int broker_port, PresencedOptions o = {})
      : broker_port_(broker_port), opts_(std::move(o)), client_id_("presenced-" + unique_suffix()) {
    write_config();
  }

  // `more` replaces the output: section (a restart with other output settings).
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
    y += "http:\n  listen: 127.0.0.1:" + std::to_string(http_port()) + "\n";
    y += opts_.http_extra;
    y += "store:\n  dir: " + file("store") + "\n";
    y += "log:\n  level: debug\n";
    y += more.empty() ? "output:\n  coalesce_interval: 50ms\n  publish_rate: 5000\n" : more;
    y += opts_.extra;
    test::PresencedProcess::write_config(y);
  }

 private:
  int broker_port_;
  PresencedOptions opts_;
  std::string client_id_;
};

}  // namespace presence::itest
