// The support library itself: a broker that starts, accepts, stops and restarts on its port.
#include <doctest/doctest.h>

#include <signal.h>

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
