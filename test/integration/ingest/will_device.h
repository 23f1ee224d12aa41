// A device with a real MQTT last will, for the ingest integration tests (presets_test and
// mixed_fleet_test shared a copy; issue 12 step 3).
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

#include "test/integration/service/harness.h"

namespace presence::itest {

using namespace std::chrono_literals;

// A device whose crash fires its will on `topic`: mosquitto_sub with --will-*, killed with
// SIGKILL (the broker then publishes the will), or stopped with SIGTERM (a clean disconnect: no
// will). Constructed connected: a retained probe on its own topic has reached it.
class WillDevice {
 public:
  WillDevice(int port, const std::string& client_id, const std::string& topic,
             const std::string& payload)
      : out_(dir_.file("out.txt")) {
    const std::string probe = "will-device/" + client_id + "/cmd";
    proc_ = presence::test::Process({presence::test::find_program("mosquitto_sub"), "-h", "127.0.0.1", "-p",
                     std::to_string(port), "-i", client_id, "-k", "5", "-t", probe,
                     "--will-topic", topic, "--will-payload", payload, "--will-retain",
                     "--will-qos", "1"},
                    out_);
    mqtt_pub(port, probe, "connected", true);
    if (!wait_for([&] { return presence::test::read_file(out_).find("connected") !=
                               std::string::npos; },
                  15s))
      throw std::runtime_error("will device " + client_id + " did not connect");
  }
  void crash() { proc_.stop(9, 5000ms); }
  void disconnect_cleanly() { proc_.stop(15, 5000ms); }

 private:
  presence::test::TempDir dir_;
  std::string out_;
  presence::test::Process proc_;
};

}  // namespace presence::itest
