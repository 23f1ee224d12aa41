// Unit tests for presence/ingest/bulk_reader.* (issue 16 item 2): the pure part, BulkStream
// (bytes of one connection in, one chunk of PUBLISHes out), and the broker URI rule. The socket
// side runs against a real mosquitto in test/integration/ingest/bulk_reader_test.cpp.
#include "presence/ingest/bulk_reader.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace presence::ingest;
namespace codec = presence::mqtt_codec;

namespace {

std::string heartbeat(int i, std::string payload = "1") {
  std::string out;
  codec::encode_publish(out, "devices/d" + std::to_string(i) + "/heartbeat", payload, 0, false, 0);
  return out;
}

std::vector<std::string> topics_of(const BulkChunk& c) {
  std::vector<std::string> out;
  for (const auto& m : c.messages) out.emplace_back(c.topic(m));
  return out;
}

}  // namespace

TEST_CASE("several PUBLISHes in one read come out as one chunk, in order, topic and payload intact") {
  BulkStream s(1 << 20);
  std::string wire;
  for (int i = 0; i < 100; ++i) wire += heartbeat(i, std::to_string(i * 7));
  codec::encode_publish(wire, "devices/r/status", "online", 0, true, 0);
  s.feed(wire);
  BulkChunk chunk;
  std::string replies;
  REQUIRE(s.drain(chunk, replies));
  REQUIRE(chunk.messages.size() == 101);
  for (int i = 0; i < 100; ++i) {
    CHECK(chunk.topic(chunk.messages[i]) == "devices/d" + std::to_string(i) + "/heartbeat");
    CHECK(chunk.payload(chunk.messages[i]) == std::to_string(i * 7));
    CHECK_FALSE(chunk.messages[i].retained);
  }
  CHECK(chunk.topic(chunk.messages[100]) == "devices/r/status");
  CHECK(chunk.payload(chunk.messages[100]) == "online");
  CHECK(chunk.messages[100].retained);
  CHECK(replies.empty());
  CHECK(s.buffered() == 0);
}

TEST_CASE("packets split across reads at every byte boundary: each PUBLISH exactly once") {
  std::string wire = heartbeat(1) + heartbeat(2, std::string(300, 'x')) + heartbeat(3);
  for (std::size_t cut = 1; cut < wire.size(); ++cut) {
    CAPTURE(cut);
    BulkStream s(1 << 20);
    BulkChunk chunk;
    std::string replies;
    // The way BulkReader reads: recv() straight into prepare(), then commit().
    char* at = s.prepare(cut);
    wire.copy(at, cut, 0);
    s.commit(cut);
    REQUIRE(s.drain(chunk, replies));
    const std::size_t first = chunk.messages.size();
    CHECK(first <= 3);
    at = s.prepare(wire.size() - cut);
    wire.copy(at, wire.size() - cut, cut);
    s.commit(wire.size() - cut);
    REQUIRE(s.drain(chunk, replies));
    CHECK(topics_of(chunk) == std::vector<std::string>{"devices/d1/heartbeat", "devices/d2/heartbeat",
                                                       "devices/d3/heartbeat"});
    CHECK(chunk.payload(chunk.messages[1]) == std::string(300, 'x'));
    CHECK(s.buffered() == 0);
  }
}

TEST_CASE("a PUBLISH over the packet limit is dropped and counted, its bytes discarded as they come") {
  BulkStream s(1024);
  BulkChunk chunk;
  std::string replies;
  // One device's 5,000-byte "heartbeat" between two good ones, fed in 100-byte reads.
  const std::string wire = heartbeat(1) + heartbeat(2, std::string(5000, 'x')) + heartbeat(3);
  for (std::size_t at = 0; at < wire.size(); at += 100) {
    s.feed(std::string_view(wire).substr(at, 100));
    REQUIRE(s.drain(chunk, replies));
    CHECK(s.buffered() < 1024);  // never the whole big packet
  }
  CHECK(topics_of(chunk) == std::vector<std::string>{"devices/d1/heartbeat", "devices/d3/heartbeat"});
  CHECK(s.oversized() == 1);
  CHECK(s.last_oversized_size() == 5000 + 2 + std::string("devices/d2/heartbeat").size());

  // A PUBLISH announcing 268,435,455 bytes (the 4-byte maximum): nothing is reserved for it.
  BulkStream big(64 * 1024);
  big.feed(std::string("\x30\xff\xff\xff\x7f", 5) + std::string(1000, 'y'));
  BulkChunk c2;
  CHECK(big.drain(c2, replies));
  CHECK(big.buffered() == 0);
  CHECK(big.oversized() == 1);
  CHECK(c2.messages.empty());
  // Counted across a reconnect's reset().
  big.reset();
  CHECK(big.oversized() == 1);
}

TEST_CASE("a remaining length of more than 4 bytes, a reserved type, a malformed PUBLISH: errors, and stay errors") {
  struct Case {
    std::string wire;
    const char* error;
  };
  const Case cases[] = {
      {std::string("\x30\xff\xff\xff\xff\x01", 6), "remaining length longer than 4 bytes"},
      {std::string("\xf0\x00", 2), "reserved packet type 15"},
      {std::string("\x00\x00", 2), "reserved packet type 0"},
      {std::string("\x30\x01\x00", 3), "malformed PUBLISH"},           // topic length cut
      {std::string("\x30\x03\x00\x05x", 5), "malformed PUBLISH"},      // topic longer than body
      {std::string("\x36\x02\x00\x00", 4), "malformed PUBLISH"},       // QoS 3
      {std::string("\x34\x04\x00\x00\x00\x01", 6), "QoS 2 PUBLISH on a QoS 0 subscription"},
      {std::string("\xd0\x01\x00", 3), "malformed PINGRESP"},
      {std::string("\x10\x00", 2), "unexpected CONNECT from the broker"},
      {std::string("\xc0\x00", 2), "unexpected PINGREQ from the broker"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.error);
    BulkStream s(1 << 20);
    // A good PUBLISH first: it is delivered, the error stops what follows.
    s.feed(heartbeat(1) + c.wire + heartbeat(2));
    BulkChunk chunk;
    std::string replies;
    CHECK_FALSE(s.drain(chunk, replies));
    CHECK(s.error() == c.error);
    CHECK(topics_of(chunk) == std::vector<std::string>{"devices/d1/heartbeat"});
    // It stays an error: the connection must be dropped, not resynchronised; reset() is the
    // fresh connection.
    s.feed(heartbeat(3));
    CHECK_FALSE(s.drain(chunk, replies));
    s.reset();
    s.feed(heartbeat(3));
    CHECK(s.drain(chunk, replies));
    CHECK(chunk.messages.size() == 2);
  }
}

TEST_CASE("handshake packets are remembered; a QoS 1 PUBLISH is acknowledged; PINGRESP is quiet") {
  BulkStream s(1 << 20);
  std::string wire("\x20\x02\x00\x00", 4);          // CONNACK accepted
  wire += std::string("\x90\x03\x00\x01\x00", 5);   // SUBACK id 1, granted QoS 0
  wire += std::string("\x90\x03\x00\x02\x80", 5);   // SUBACK id 2, refused
  wire += std::string("\xd0\x00", 2);               // PINGRESP
  codec::encode_publish(wire, "devices/q/heartbeat", "1", 1, false, 0x1234);
  s.feed(wire);
  BulkChunk chunk;
  std::string replies;
  REQUIRE(s.drain(chunk, replies));
  REQUIRE(s.connack());
  CHECK(s.connack()->return_code == 0);
  REQUIRE(s.subacks().size() == 2);
  CHECK(s.subacks()[0] == std::pair<std::uint16_t, std::uint8_t>{1, 0});
  CHECK(s.subacks()[1] == std::pair<std::uint16_t, std::uint8_t>{2, 0x80});
  CHECK(chunk.messages.size() == 1);
  std::string puback;
  codec::encode_puback(puback, 0x1234);
  CHECK(replies == puback);
  // A second CONNACK on one connection is a broken broker.
  s.feed(std::string("\x20\x02\x00\x00", 4));
  CHECK_FALSE(s.drain(chunk, replies));
  CHECK(s.error() == "second CONNACK");
}

TEST_CASE("over a long stream cut anywhere, the buffer holds at most one partial packet") {
  BulkStream s(1 << 20);
  const std::string one = heartbeat(12345);
  std::size_t offset = 0;  // bytes of the endless stream one, one, one, ... fed so far
  std::size_t total = 0;
  for (int read = 0; read < 300; ++read) {
    const std::size_t n = 1 + static_cast<std::size_t>(read * 7919 % 9000);
    char* at = s.prepare(n);
    for (std::size_t k = 0; k < n; ++k) at[k] = one[(offset + k) % one.size()];
    s.commit(n);
    offset += n;
    BulkChunk chunk;
    std::string replies;
    REQUIRE(s.drain(chunk, replies));
    for (const auto& m : chunk.messages) CHECK(chunk.topic(m) == "devices/d12345/heartbeat");
    total += chunk.messages.size();
    CHECK(s.buffered() == offset % one.size());
  }
  CHECK(total == offset / one.size());
}

TEST_CASE("plain_tcp_endpoint: tcp:// and mqtt:// only, default port 1883, IPv6 literals") {
  auto e = plain_tcp_endpoint("tcp://127.0.0.1:18830");
  REQUIRE(e);
  CHECK(e->host == "127.0.0.1");
  CHECK(e->port == "18830");
  e = plain_tcp_endpoint("mqtt://broker.example");
  REQUIRE(e);
  CHECK(e->host == "broker.example");
  CHECK(e->port == "1883");
  e = plain_tcp_endpoint("tcp://[::1]:1884");
  REQUIRE(e);
  CHECK(e->host == "::1");
  CHECK(e->port == "1884");
  CHECK_FALSE(plain_tcp_endpoint("ssl://broker:8883"));
  CHECK_FALSE(plain_tcp_endpoint("mqtts://broker:8883"));
  CHECK_FALSE(plain_tcp_endpoint("ws://broker:8080/mqtt"));
  CHECK_FALSE(plain_tcp_endpoint("wss://broker/mqtt"));
  CHECK_FALSE(plain_tcp_endpoint("tcp://:1883"));
  CHECK_FALSE(plain_tcp_endpoint("tcp://host:port"));
  CHECK_FALSE(plain_tcp_endpoint("tcp://[::1"));
}
