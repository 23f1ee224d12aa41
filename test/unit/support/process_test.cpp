// The support library itself: a broker that starts, accepts, stops and restarts on its port.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "test/support/process.h"

using namespace presence::test;

TEST_CASE("free_tcp_port gives a closed loopback port") {
  int port = free_tcp_port();
  CHECK(port > 0);
  CHECK_FALSE(tcp_port_open(port));
}

TEST_CASE("Process reports exit codes and kills on stop") {
  Process ok({"sh", "-c", "exit 3"});
  CHECK(ok.wait_exit(5000ms) == 3);
  Process sleeper({"sleep", "30"});
  CHECK(sleeper.running());
  sleeper.stop(SIGTERM, 2000ms);
  CHECK_FALSE(sleeper.running());
}

TEST_CASE("TempDir is removed unless kept") {
  std::string gone, kept;
  {
    TempDir a;
    gone = a.write("x", "1");
    TempDir b;
    kept = b.write("x", "1");
    b.keep();
  }
  CHECK_FALSE(std::filesystem::exists(gone));
  CHECK(std::filesystem::exists(kept));
  std::filesystem::remove_all(std::filesystem::path(kept).parent_path());
}

// What presence-e2e-bench relies on when `timeout` or Ctrl-C stops it: its children die with it.
TEST_CASE("kill_all_on_signals: SIGTERM kills the live children and exits 128+15") {
  TempDir dir;
  const std::string pid_file = dir.file("child.pid");
  const pid_t bench = ::fork();
  REQUIRE(bench >= 0);
  if (bench == 0) {
    Process::kill_all_on_signals();
    Process child({"sh", "-c", "echo $$ > " + pid_file + ".tmp && mv " + pid_file + ".tmp " + pid_file +
                                   " && exec sleep 60"});
    ::pause();
    ::_exit(0);
  }
  REQUIRE(wait_for([&] { return !read_file(pid_file).empty(); }, 10000ms));
  const pid_t child = static_cast<pid_t>(std::stol(read_file(pid_file)));
  ::kill(bench, SIGTERM);
  int st = 0;
  REQUIRE(::waitpid(bench, &st, 0) == bench);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 128 + SIGTERM);
  // The child was SIGKILLed (reaped by init now that its parent is gone): it disappears.
  CHECK(wait_for([&] { return ::kill(child, 0) != 0; }, 5000ms));
}

TEST_CASE("Mosquitto starts on a free port and restarts on the same port") {
  Mosquitto broker;
  broker.start();
  CHECK(tcp_port_open(broker.port()));
  int port = broker.port();
  broker.stop();
  CHECK_FALSE(tcp_port_open(port));
  broker.start();
  CHECK(tcp_port_open(port));
  CHECK(broker.uri() == "tcp://127.0.0.1:" + std::to_string(port));
}
