// A subscriber to presenced's retained output (presence/#) for integration tests: records every
// state each device is published with and the latest presence/fleet. One copy for every test
// (issue 12): its teardown is the part that matters, see ~Observer.
//
// Build: link presence_test_observer (test/support/CMakeLists.txt).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

namespace presence::test {

class Observer {
 public:
  // Connects to uri (waits for the CONNACK) and subscribes to presence/# on every (re)connect.
  explicit Observer(const std::string& uri);
  // Paho delivers on its own thread, and presence/# is never quiet (presenced's probes every
  // 500 ms): stop the callbacks and let one in flight finish before the members it uses are gone
  // (a delivery during teardown crashed service_reconcile_test once).
  ~Observer();
  Observer(const Observer&) = delete;
  Observer& operator=(const Observer&) = delete;

  // The device's latest published state ("" when never published).
  std::string state(const std::string& id);
  // The device's latest payload (null when never published).
  nlohmann::json latest(const std::string& id);
  // Every state the device was published with, repeats folded.
  std::vector<std::string> history(const std::string& id);
  // Devices that were ever published in `state`.
  std::vector<std::string> ever(const std::string& state);
  // Devices whose latest state is `state`.
  std::size_t count_in(const std::string& state);
  // The latest presence/fleet payload.
  nlohmann::json fleet();
  bool wait_state(const std::string& id, const std::string& state,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  void on_message(const mqtt::message& m);

  mqtt::async_client client_;
  std::atomic<int> in_flight_{0};  // on_message calls running
  std::mutex mu_;
  std::map<std::string, nlohmann::json> latest_;
  std::map<std::string, std::vector<std::string>> history_;
  nlohmann::json fleet_;
};

}  // namespace presence::test
