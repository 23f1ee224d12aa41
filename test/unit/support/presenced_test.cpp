// The shared presenced harness itself (test/support/presenced.*): every integration harness
// (service, alerting, HA, dashboard API) starts and stops presenced through it, so its promises
// are checked once here: a presenced that refuses to start fails start() with its log instead of
// a wait for the whole timeout, and the destructor stops the process before its directory goes.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "test/support/presenced.h"
#include "test/support/process.h"

using namespace presence::test;

namespace {

std::string config(const PresencedProcess& p, int broker_port) {
  return "mqtt:\n  uri: tcp://127.0.0.1:" + std::to_string(broker_port) +
         "\n  client_id: presenced-harness-" + unique_suffix() +
         "\nhttp:\n  listen: 127.0.0.1:" + std::to_string(p.http_port()) + "\nstore:\n  dir: " +
         p.file("store") + "\n";
}

}  // namespace

TEST_CASE("PresencedProcess: a presenced that exits at start fails start() at once, with its log") {
  PresencedProcess p;
  // Off loopback without http.token: presenced refuses to start (exits 2).
  p.write_config("mqtt:\n  uri: tcp://127.0.0.1:1\nhttp:\n  listen: 0.0.0.0:1\nstore:\n  dir: " +
                 p.file("store") + "\n");
  const auto t0 = std::chrono::steady_clock::now();
  std::string what;
  try {
    p.start("/readyz", std::chrono::seconds(60));
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  CHECK(what.find("did not become ready") != std::string::npos);
  CHECK(what.find("http.token") != std::string::npos);  // the log comes with it
  // It noticed the exit: not a wait for the 60 s timeout (ctest's own limit is 60 s too).
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30));
  CHECK_FALSE(p.running());
}

TEST_CASE("PresencedProcess: ready, /metrics samples read exactly, stopped by pid on destruction") {
  Mosquitto broker;
  broker.start();
  pid_t pid = -1;
  std::string dir;
  {
    PresencedProcess p;
    p.write_config(config(p, broker.port()));
    p.start();
    pid = p.pid();
    dir = std::filesystem::path(p.config_path()).parent_path().string();
    CHECK(p.status("/readyz") == 200);
    CHECK(p.metric("presence_broker_connected") == 1);
    CHECK(p.metric("presence_broker_connecte") == -1);  // a prefix is not the sample
    CHECK(p.metric("no_such_sample") == -1);
    CHECK(std::filesystem::exists(dir));
  }
  // Killed and reaped (no zombie answers kill 0), and its directory removed after it.
  CHECK(::kill(pid, 0) == -1);
  CHECK_FALSE(std::filesystem::exists(dir));
}
