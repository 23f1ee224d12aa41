// presence-e2e-bench: what /proc says about a child process (CPU, RSS, threads). Starting and
// stopping children is test/support/process.h's (issue 12 step 3: this file was a copy of it). The
// bench writes its own mosquitto.conf: test::Mosquitto logs every packet ("log_type all"), which
// would bill the broker for logging during a throughput measurement.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "test/support/process.h"

namespace presence::e2e {

// Children, temp dirs and ports: the tests' process helper (one for tests and benchmarks).
using test::find_program;
using test::free_tcp_port;
using test::Process;
using test::read_file;
using test::tcp_port_open;
using test::TempDir;

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

}  // namespace presence::e2e
