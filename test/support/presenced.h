// One presenced process for integration tests and benchmarks (issue 12: the service, alerting and
// HA harnesses each had a copy of this). It owns a temp dir with the config, the log and the store,
// a free loopback HTTP port, and the child process; start() waits for readiness with a bound, and
// the destructor stops the process (SIGKILL, reaped) before its directory goes. What goes into the
// config is the caller's: each harness writes its own YAML with http_port() and file("store").
//
//   test::PresencedProcess p;
//   p.write_config("...http:\n  listen: 127.0.0.1:" + std::to_string(p.http_port()) + "\n...");
//   p.start();                       // throws with the log when it does not become ready
//   CHECK(p.metric("presence_devices{state=\"online\"}") == 3);
//
// Build: link presence_test_presenced (test/support/CMakeLists.txt).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "test/support/process.h"

namespace presence::test {

// "<pid>-<n>": unique per process and call, for client ids and names that share one broker.
std::string unique_suffix();

class PresencedProcess {
 public:
  PresencedProcess();
  PresencedProcess(const PresencedProcess&) = delete;
  PresencedProcess& operator=(const PresencedProcess&) = delete;
  // Members go in reverse order: the process (killed and reaped) before the temp dir it writes to.
  virtual ~PresencedProcess() = default;

  // This build's presenced.
  static std::string binary();

  int http_port() const { return http_port_; }
  // A path in the instance's own temp dir (the store, extra files a config names).
  std::string file(const std::string& name) const { return dir_.file(name); }
  const std::string& config_path() const { return config_; }
  const std::string& log_path() const { return log_; }
  std::string log() const { return read_file(log_); }

  // Writes presenced.yaml (replacing the last one: a restart may change it).
  void write_config(const std::string& yaml);

  // Starts without waiting for readiness.
  void launch();
  // Starts and waits until ready_path answers 200 ("/readyz": connected, subscribed, not blind;
  // "/healthz": up, whatever /readyz says); throws std::runtime_error with the log when presenced
  // exits or is not ready within timeout.
  void start(const std::string& ready_path = "/readyz", std::chrono::milliseconds timeout = 10s,
             const std::string& name = "presenced");
  // Sends sig, waits up to timeout, then SIGKILL; returns the waitpid status (-1: not running).
  int stop(int sig = 15, std::chrono::milliseconds timeout = 10000ms) {
    return proc_.stop(sig, timeout);
  }
  bool running() { return proc_.running(); }
  void signal(int sig) { proc_.signal(sig); }
  int wait_exit(std::chrono::milliseconds timeout) { return proc_.wait_exit(timeout); }
  pid_t pid() const { return proc_.pid(); }

  // GET on the HTTP port (1 s connect, 2 s read): the status, -1 when nothing answered.
  int status(const std::string& path);
  // GET on the HTTP port: the body, "" when nothing answered.
  std::string body(const std::string& path);
  std::string metrics() { return body("/metrics"); }
  // The value of one sample of /metrics, "name" or "name{labels}" exactly as printed; -1 when
  // absent.
  double metric(const std::string& sample);

 private:
  TempDir dir_;
  int http_port_;
  std::string config_;
  std::string log_ = dir_.file("presenced.log");
  Process proc_;  // last: stopped before the members above go
};

}  // namespace presence::test
