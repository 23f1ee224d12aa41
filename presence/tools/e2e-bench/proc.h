// presence-e2e-bench: child processes and what /proc says about them (CPU, RSS, threads).
//
// Not test/support/process.h: that library belongs to the tests (built only WITH_TESTS) and its
// Mosquitto class logs every packet ("log_type all"), which would bill the broker for logging
// during a throughput measurement. This is the same idea, smaller.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace presence::e2e {

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_tcp_port();
bool tcp_port_open(int port);

// A fresh directory under $TMPDIR (or /tmp), removed on destruction unless keep() was called.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const;
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// A child process; stdout and stderr go to log_path. SIGKILLed and reaped on destruction.
class Child {
 public:
  Child() = default;
  Child(const std::vector<std::string>& argv, const std::string& log_path);
  ~Child();
  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // Sends sig, waits up to timeout, then SIGKILL. Returns the waitpid status or -1.
  int stop(int sig, std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
};

// utime + stime of a process (all threads, children excluded), in seconds.
double cpu_seconds(pid_t pid);
// Per-thread utime + stime in seconds, keyed by thread id, with the thread's name (comm).
struct ThreadCpu {
  pid_t tid = 0;
  std::string name;
  double seconds = 0;
};
std::vector<ThreadCpu> thread_cpu(pid_t pid);
// VmRSS and VmHWM (peak) in bytes; 0 if unreadable.
std::uint64_t rss_bytes(pid_t pid);
std::uint64_t peak_rss_bytes(pid_t pid);

// SIGINT/SIGTERM kill every live Child (SIGKILL) and exit 128+signal.
void kill_children_on_signals();

// Program on PATH or in /usr/sbin; empty if absent.
std::string find_program(const std::string& name);
std::string read_file(const std::string& path);

}  // namespace presence::e2e
