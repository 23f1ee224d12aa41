// A minimal MQTT 3.1.1 client codec for presence-sim: just the packets a simulated device needs
// (CONNECT with will, CONNACK, PUBLISH QoS 0/1, PUBACK, SUBSCRIBE/SUBACK for test observers,
// PINGREQ/PINGRESP, DISCONNECT), and an incremental decoder that copes with partial reads. The
// one hand-written MQTT codec: presence-e2e-bench and the raw test client of broker-ext's
// integration tests (test/integration/broker-ext/mqtt_raw.*) use it too (issue 12 step 3).
//
// Why not Paho: Paho C waits on its clients' sockets with select() (~1024 per process) and its
// maintainers advise ~500 connections per process (paho.mqtt.c#1078); it also cannot close a
// socket without DISCONNECT, which is how a device dies. The simulator must hold 20,000+
// connections on a 2-core machine (issue 6), so every device shares one epoll loop and this codec
// (docs/simulator.md, "Why a hand-written codec").
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace presence::sim::mqtt {

enum class PacketType : std::uint8_t {
  Connect = 1,
  Connack = 2,
  Publish = 3,
  Puback = 4,
  Pubrec = 5,
  Pubrel = 6,
  Pubcomp = 7,
  Subscribe = 8,
  Suback = 9,
  Unsubscribe = 10,
  Unsuback = 11,
  Pingreq = 12,
  Pingresp = 13,
  Disconnect = 14,
};

struct Will {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 1;
  bool retain = true;
};

struct ConnectOptions {
  std::string client_id;
  std::uint16_t keepalive_s = 60;
  bool clean_session = true;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;
  // 4 = MQTT 3.1.1; 5 = an MQTT 5 CONNECT with no properties (tests of how a broker treats a v5
  // client; nothing else here speaks v5).
  std::uint8_t protocol_level = 4;
};

// Encoders append one packet to out (so a caller can batch packets into one write).
void encode_connect(std::string& out, const ConnectOptions& options);
void encode_publish(std::string& out, std::string_view topic, std::string_view payload,
                    std::uint8_t qos, bool retain, std::uint16_t packet_id, bool dup = false);
void encode_puback(std::string& out, std::uint16_t packet_id);
void encode_subscribe(std::string& out, std::uint16_t packet_id, std::string_view filter,
                      std::uint8_t qos);
void encode_pingreq(std::string& out);
void encode_disconnect(std::string& out);

// One whole packet as framed on the wire: the type and flags nibbles of the fixed header and the
// variable header + payload ("body").
struct Packet {
  PacketType type = PacketType::Connect;
  std::uint8_t flags = 0;
  std::string body;
};

struct Connack {
  bool session_present = false;
  std::uint8_t return_code = 0;  // 0 accepted; 1..5 refused (3.1.1 table 3.1)
};

struct Publish {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;
};

// Body parsers: nullopt when the packet is malformed (wrong length, bad flags, bad QoS).
std::optional<Connack> parse_connack(const Packet& p);
std::optional<Publish> parse_publish(const Packet& p);
// PUBACK, SUBACK (first id only), UNSUBACK: the packet identifier.
std::optional<std::uint16_t> parse_packet_id(const Packet& p);
// SUBACK return code of the single subscription we send (0x80 = failure).
std::optional<std::uint8_t> parse_suback_code(const Packet& p);

// Incremental decoder: feed() whatever read() returned, then call next() until it says NeedMore.
// A malformed stream (remaining length over 4 bytes, packet over max_packet, reserved type) is an
// Error and stays an Error: the caller must drop the connection.
class Decoder {
 public:
  enum class Status { Packet, NeedMore, Error };

  explicit Decoder(std::size_t max_packet = 256 * 1024) : max_packet_(max_packet) {}

  void feed(std::string_view bytes);
  Status next(Packet& out);
  const std::string& error() const { return error_; }
  std::size_t buffered() const { return buf_.size() - pos_; }
  void reset();

 private:
  std::string buf_;
  std::size_t pos_ = 0;
  std::size_t max_packet_;
  std::string error_;
};

const char* to_string(PacketType t);
// CONNACK return code in words, for logs and the summary.
const char* connack_reason(std::uint8_t code);

}  // namespace presence::sim::mqtt
