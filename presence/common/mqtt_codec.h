// A minimal MQTT 3.1.1 client codec: just the packets a simulated device or a subscriber needs
// (CONNECT with will, CONNACK, PUBLISH QoS 0/1, PUBACK, SUBSCRIBE/SUBACK, PINGREQ/PINGRESP,
// DISCONNECT), and an incremental decoder that copes with partial reads. The one hand-written
// MQTT codec (issue 12 step 3): presence-sim, presenced's bulk heartbeat reader
// (presence/ingest/bulk_reader.h, issue 16), presence-e2e-bench and the raw test client of
// broker-ext's integration tests (test/integration/broker-ext/mqtt_raw.*) use it.
//
// Why not Paho: Paho C waits on its clients' sockets with select() (~1024 per process) and its
// maintainers advise ~500 connections per process (paho.mqtt.c#1078); it also cannot close a
// socket without DISCONNECT, which is how a device dies. The simulator must hold 20,000+
// connections on a 2-core machine (issue 6), so every device shares one epoll loop and this codec
// (docs/simulator.md, "Why a hand-written codec").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace presence::mqtt_codec {

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

// A packet whose body points into the Decoder's buffer (the hot path: no copy per packet). Valid
// until the decoder's next feed(), prepare() or reset().
struct PacketView {
  PacketType type = PacketType::Connect;
  std::uint8_t flags = 0;
  std::string_view body;
};

// A PUBLISH whose topic and payload point into the packet's body.
struct PublishView {
  std::string_view topic;
  std::string_view payload;
  std::uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  std::uint16_t packet_id = 0;
};

// Body parsers: nullopt when the packet is malformed (wrong length, bad flags, bad QoS).
std::optional<Connack> parse_connack(const Packet& p);
std::optional<Publish> parse_publish(const Packet& p);
std::optional<PublishView> parse_publish(const PacketView& p);
// PUBACK, SUBACK (first id only), UNSUBACK: the packet identifier.
std::optional<std::uint16_t> parse_packet_id(const Packet& p);
// SUBACK return code of the single subscription we send (0x80 = failure).
std::optional<std::uint8_t> parse_suback_code(const Packet& p);

// Incremental decoder: feed() whatever read() returned, then call next() until it says NeedMore.
// A malformed stream (remaining length over 4 bytes, packet over max_packet, reserved type) is an
// Error and stays an Error: the caller must drop the connection. The buffer holds at most one
// partial packet (<= max_packet) plus what was fed since the last next() that said NeedMore.
class Decoder {
 public:
  enum class Status { Packet, NeedMore, Error };

  explicit Decoder(std::size_t max_packet = 256 * 1024) : max_packet_(max_packet) {}
  // A subscriber's choice: a well-formed packet over max_packet is read past and dropped
  // (counted in skipped()) instead of being an Error, so one device publishing a huge message
  // does not cost the connection. Its bytes are discarded as they arrive: memory stays bounded.
  void skip_oversized(bool on) { skip_oversized_ = on; }
  std::uint64_t skipped() const { return skipped_; }
  std::size_t last_skipped_size() const { return last_skipped_size_; }
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;
  Decoder(Decoder&&) = default;
  Decoder& operator=(Decoder&&) = default;

  void feed(std::string_view bytes);
  // Zero-copy reads: recv() straight into the buffer. prepare(n) returns room for n bytes at the
  // end (valid until the next call on the decoder), commit(k) adds the k <= n bytes read there.
  char* prepare(std::size_t n);
  void commit(std::size_t k);
  Status next(Packet& out);       // copies the body
  Status next(PacketView& out);   // points into the buffer (see PacketView)
  const std::string& error() const { return error_; }
  std::size_t buffered() const { return end_ - pos_; }
  std::size_t max_packet() const { return max_packet_; }
  void reset();

 private:
  void make_room(std::size_t n);
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0;
  std::size_t pos_ = 0;  // first byte not yet decoded
  std::size_t end_ = 0;  // one past the last byte fed
  std::size_t max_packet_;
  std::string error_;
  bool skip_oversized_ = false;
  std::size_t skip_ = 0;  // bytes of an oversized packet still to discard
  std::uint64_t skipped_ = 0;
  std::size_t last_skipped_size_ = 0;
};

const char* to_string(PacketType t);
// CONNACK return code in words, for logs and the summary.
const char* connack_reason(std::uint8_t code);

}  // namespace presence::mqtt_codec
