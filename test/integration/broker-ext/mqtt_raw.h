// A minimal MQTT 3.1.1 client over a raw loopback socket, for broker-ext's integration tests.
// Raw on purpose: the tests need what a library hides (a socket that never sends CONNECT, a
// client that stops sending PINGREQ, 2,000 connections without 2,000 threads, the exact CONNACK
// return code). The bytes are presence-sim's codec (presence/common/mqtt_codec.h, the one MQTT codec);
// this file adds only the blocking socket. test/support provides the broker.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "presence/common/mqtt_codec.h"

namespace presence::test::mqtt {

struct ConnectOptions {
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::uint16_t keepalive = 60;
  bool clean = true;
  int protocol = 4;  // 4 = MQTT 3.1.1, 5 = MQTT 5 (no properties sent)
};

// CONNECT packet bytes (MQTT 3.1.1 or 5).
std::string connect_packet(const ConnectOptions& o);
// PUBLISH packet bytes, QoS 0, MQTT 3.1.1.
std::string publish_packet(const std::string& topic, const std::string& payload);

struct Publish {
  std::string topic;
  std::string payload;
  bool retain = false;
};

class RawClient {
 public:
  RawClient() = default;
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // TCP connect to 127.0.0.1:port; false on failure.
  bool open(int port);
  // Starts a non-blocking connect (for thousands of connections at once): poll fd() for
  // POLLOUT, then finish_open() checks the result and makes the socket blocking again.
  bool open_async(int port);
  bool finish_open();
  // open + CONNECT + wait for CONNACK. Returns the CONNACK return/reason code (0 = accepted), or -1
  // if there was no CONNACK within timeout (or the socket closed first).
  int connect(int port, const ConnectOptions& o,
              std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));
  bool send_raw(const std::string& bytes);
  bool subscribe(const std::string& filter, std::uint16_t mid = 1);
  // PUBLISH at QoS 0 (not retained).
  bool publish(const std::string& topic, const std::string& payload);
  bool ping();
  // Sends DISCONNECT and closes.
  void disconnect();
  // Closes the socket without DISCONNECT (an unclean loss, as a crashed device).
  void close();
  // Next PUBLISH within timeout (SUBACK/PINGRESP are skipped). Publishes arrive at QoS 0 since
  // we subscribe at QoS 0, so nothing needs acknowledging.
  std::optional<Publish> read_publish(std::chrono::milliseconds timeout);
  // True if the broker closed the connection (read returns 0) within timeout.
  bool wait_closed(std::chrono::milliseconds timeout);
  int fd() const { return fd_; }

 private:
  // Reads one whole packet; false on timeout, close or a malformed stream.
  bool read_packet(presence::mqtt_codec::Packet& out, std::chrono::milliseconds timeout);
  int fd_ = -1;
  // Large enough for any retained payload a test reads (the broker's own limit is higher still).
  presence::mqtt_codec::Decoder decoder_{16 * 1024 * 1024};
  bool closed_by_peer_ = false;
};

// Subscribes to a filter and collects every PUBLISH on a background thread.
class Collector {
 public:
  Collector(int port, const std::string& filter, const std::string& client_id = "collector");
  ~Collector();
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;
  std::vector<Publish> snapshot();
  // Waits until a message whose topic ends with suffix (and whose payload contains `contains`)
  // arrived; returns it.
  std::optional<Publish> wait_for(const std::string& topic_suffix, const std::string& contains,
                                  std::chrono::milliseconds timeout);

 private:
  RawClient client_;
  std::mutex mu_;
  std::vector<Publish> msgs_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace presence::test::mqtt
