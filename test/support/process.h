// Test support for integration tests and benchmarks: free loopback ports, temp dirs, child
// processes and a real mosquitto on a free port. Integration tests start their own broker and clean
// up after themselves (STYLE.md habit 9, like Mosquitto's test/broker/). The one process helper:
// presence-e2e-bench uses it too (issue 12 step 3; it had a copy in tools/e2e-bench/proc.*).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace presence::test {

using namespace std::chrono_literals;

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it back, close).
int free_tcp_port();
// True when something accepts TCP connections on 127.0.0.1:port.
bool tcp_port_open(int port);

// Polls pred every `every` until it is true or timeout passes; returns pred's last value.
// The bounded, short real-time wait integration tests use instead of fixed sleeps.
bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
              std::chrono::milliseconds every = 20ms);

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction unless
// keep() was called (a benchmark keeps its logs when asked).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Writes text to file(name) and returns its path.
  std::string write(const std::string& name, const std::string& text) const;
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

std::string read_file(const std::string& path);

// A child process. stdout and stderr go to log_path (appended) when given, else /dev/null.
// The destructor kills (SIGKILL) and reaps it if it is still running.
class Process {
 public:
  Process() = default;
  Process(std::vector<std::string> argv, std::string log_path = {},
          std::map<std::string, std::string> extra_env = {});
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Sends sig (if running) and waits up to timeout for exit; SIGKILL after that. Returns the exit
  // status as from waitpid (or -1 if it was not running).
  int stop(int sig = 15, std::chrono::milliseconds timeout = 5000ms);
  // Waits up to timeout for the process to exit by itself; returns exit code, or -1 on timeout,
  // or 128+signal if killed by a signal.
  int wait_exit(std::chrono::milliseconds timeout);

  // From now on SIGINT/SIGTERM SIGKILL every live Process and exit 128+signal: a benchmark killed
  // by `timeout` or Ctrl-C must not leave a broker and a presenced running (tests do not need it:
  // CTest kills the whole process group).
  static void kill_all_on_signals();

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// A real mosquitto broker on 127.0.0.1:<free port>, with a config written to a temp dir.
// extra_conf lines are appended (e.g. "plugin /path/mosquitto_presence.so", password_file ...).
class Mosquitto {
 public:
  explicit Mosquitto(std::string extra_conf = {}, bool allow_anonymous = true);
  ~Mosquitto();
  Mosquitto(const Mosquitto&) = delete;
  Mosquitto& operator=(const Mosquitto&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  const std::string& log_path() const { return log_; }
  const TempDir& dir() const { return dir_; }

  // start() waits until the port accepts connections (up to 30 s: CI machines can be loaded);
  // throws std::runtime_error with the broker log if it does not come up. The first start moves
  // to another free port if the one picked was taken meanwhile (free_tcp_port is racy by nature);
  // a restart keeps its port, so clients can reconnect to the same address.
  void start();
  void stop(int sig = 15);  // SIGTERM: clean shutdown; 9: crash
  void restart() { stop(); start(); }
  bool running() { return proc_.running(); }
  pid_t pid() const { return proc_.pid(); }

 private:
  void write_conf();

  TempDir dir_;
  int port_;
  std::string extra_conf_;
  bool allow_anonymous_;
  bool started_once_ = false;
  std::string conf_;
  std::string log_;
  Process proc_;
};

// Path of a program on PATH or in /usr/sbin (mosquitto lives there on Debian); empty if absent.
std::string find_program(const std::string& name);

}  // namespace presence::test
