// Unit tests for presence/common/mqtt_codec.* (the one MQTT codec): exact bytes against MQTT 3.1.1, and the decoder under
// partial reads and malformed input.
#include "presence/common/mqtt_codec.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace presence::mqtt_codec;

namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

std::vector<Packet> decode_all(Decoder& d) {
  std::vector<Packet> out;
  Packet p;
  while (d.next(p) == Decoder::Status::Packet) out.push_back(p);
  return out;
}

}  // namespace

TEST_CASE("CONNECT with a retained QoS 1 will matches the 3.1.1 layout byte for byte") {
  ConnectOptions c;
  c.client_id = "d1";
  c.keepalive_s = 60;
  c.will = Will{"t/s", "off", 1, true};
  std::string out;
  encode_connect(out, c);
  // flags: will retain 0x20 | will qos1 0x08 | will 0x04 | clean 0x02 = 0x2E
  auto want = bytes({0x10, 10 + 4 + 5 + 5, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x2E, 0, 60, 0, 2, 'd',
                     '1', 0, 3, 't', '/', 's', 0, 3, 'o', 'f', 'f'});
  CHECK(out == want);
}

TEST_CASE("CONNECT without will, with user name and password") {
  ConnectOptions c;
  c.client_id = "x";
  c.keepalive_s = 0x0102;
  c.clean_session = false;
  c.username = "u";
  c.password = "p";
  std::string out;
  encode_connect(out, c);
  auto want = bytes({0x10, 10 + 3 + 3 + 3, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC0, 1, 2, 0, 1, 'x', 0,
                     1, 'u', 0, 1, 'p'});
  CHECK(out == want);
}

// broker-ext's tests send a v5 CONNECT through this codec (issue 12: one codec for sim and tests).
TEST_CASE("CONNECT at protocol level 5 carries empty CONNECT and will properties") {
  ConnectOptions c;
  c.client_id = "d";
  c.keepalive_s = 10;
  c.protocol_level = 5;
  std::string out;
  encode_connect(out, c);
  CHECK(out == bytes({0x10, 10 + 1 + 3, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 10, 0, 0, 1, 'd'}));
  c.will = Will{"w", "x", 0, false};
  out.clear();
  encode_connect(out, c);
  CHECK(out == bytes({0x10, 10 + 1 + 3 + 1 + 3 + 3, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x06, 0, 10, 0,
                      0, 1, 'd', 0, 0, 1, 'w', 0, 1, 'x'}));
}

TEST_CASE("PUBLISH QoS 0 and QoS 1 encode and decode back") {
  std::string out;
  encode_publish(out, "a/b", "hi", 0, true, 0);
  CHECK(out == bytes({0x31, 7, 0, 3, 'a', '/', 'b', 'h', 'i'}));
  out.clear();
  encode_publish(out, "a/b", "hi", 1, false, 0x1234);
  CHECK(out == bytes({0x32, 9, 0, 3, 'a', '/', 'b', 0x12, 0x34, 'h', 'i'}));

  Decoder d;
  d.feed(out);
  Packet p;
  REQUIRE(d.next(p) == Decoder::Status::Packet);
  auto pub = parse_publish(p);
  REQUIRE(pub);
  CHECK(pub->topic == "a/b");
  CHECK(pub->payload == "hi");
  CHECK(pub->qos == 1);
  CHECK(pub->packet_id == 0x1234);
  CHECK_FALSE(pub->retain);
}

TEST_CASE("PUBACK, PINGREQ, DISCONNECT and SUBSCRIBE are the fixed small packets") {
  std::string out;
  encode_puback(out, 7);
  encode_pingreq(out);
  encode_disconnect(out);
  encode_subscribe(out, 1, "a/#", 1);
  CHECK(out == bytes({0x40, 2, 0, 7, 0xC0, 0, 0xE0, 0, 0x82, 8, 0, 1, 0, 3, 'a', '/', '#', 1}));
}

TEST_CASE("decoder: a stream fed one byte at a time yields every packet exactly once") {
  std::string stream = bytes({0x20, 2, 0, 0});  // CONNACK accepted
  encode_publish(stream, "t", std::string(300, 'x'), 1, true, 9);  // 2-byte remaining length
  stream += bytes({0xD0, 0});                                         // PINGRESP
  stream += bytes({0x40, 2, 0, 9});                                   // PUBACK
  Decoder d;
  std::vector<Packet> got;
  for (char c : stream) {
    d.feed(std::string_view(&c, 1));
    for (auto& p : decode_all(d)) got.push_back(p);
  }
  REQUIRE(got.size() == 4);
  CHECK(got[0].type == PacketType::Connack);
  auto ack = parse_connack(got[0]);
  REQUIRE(ack);
  CHECK(ack->return_code == 0);
  CHECK(got[1].type == PacketType::Publish);
  CHECK(parse_publish(got[1])->payload.size() == 300);
  CHECK(got[2].type == PacketType::Pingresp);
  CHECK(*parse_packet_id(got[3]) == 9);
  CHECK(d.buffered() == 0);
}

TEST_CASE("decoder: remaining length boundaries 127/128 and 16383/16384") {
  for (std::size_t len : {0u, 127u, 128u, 16383u, 16384u}) {
    CAPTURE(len);
    std::string out;
    // A publish whose body is exactly len bytes: 2 (topic length) + 1 (topic) + payload.
    if (len < 3) {
      out = bytes({0xD0, 0});
    } else {
      encode_publish(out, "t", std::string(len - 3, 'p'), 0, false, 0);
      std::size_t header = len <= 127 ? 2 : len <= 16383 ? 3 : 4;
      CHECK(out.size() == header + len);
    }
    Decoder d;
    d.feed(std::string_view(out).substr(0, out.size() - 1));
    Packet p;
    if (out.size() > 1) CHECK(d.next(p) == Decoder::Status::NeedMore);
    d.feed(std::string_view(out).substr(out.size() - 1));
    REQUIRE(d.next(p) == Decoder::Status::Packet);
    CHECK(p.body.size() == (len < 3 ? 0 : len));
  }
}

TEST_CASE("decoder: malformed streams are errors and stay errors") {
  SUBCASE("five length bytes") {
    Decoder d;
    d.feed(bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
    Packet p;
    CHECK(d.next(p) == Decoder::Status::Error);
    CHECK(d.error().find("4 bytes") != std::string::npos);
    CHECK(d.next(p) == Decoder::Status::Error);
  }
  SUBCASE("four length bytes is still fine") {
    Decoder d(1u << 30);
    d.feed(bytes({0x30, 0xFF, 0xFF, 0xFF, 0x7F}));
    Packet p;
    CHECK(d.next(p) == Decoder::Status::NeedMore);
  }
  SUBCASE("over the packet size limit") {
    Decoder d(100);
    d.feed(bytes({0x30, 101}));
    Packet p;
    CHECK(d.next(p) == Decoder::Status::Error);
    Decoder at_limit(100);
    at_limit.feed(bytes({0x30, 100}));
    CHECK(at_limit.next(p) == Decoder::Status::NeedMore);
  }
  SUBCASE("reserved packet types 0 and 15") {
    for (int first : {0x00, 0xF0}) {
      Decoder d;
      d.feed(bytes({first, 0}));
      Packet p;
      CHECK(d.next(p) == Decoder::Status::Error);
    }
  }
}

TEST_CASE("body parsers reject malformed packets") {
  Packet p;
  p.type = PacketType::Connack;
  p.body = bytes({0, 5});
  CHECK(parse_connack(p)->return_code == 5);
  CHECK(std::string(connack_reason(5)) == "not authorized");
  p.body = bytes({2, 0});  // reserved ack flag bit
  CHECK_FALSE(parse_connack(p));
  p.body = bytes({0});
  CHECK_FALSE(parse_connack(p));

  Packet pub;
  pub.type = PacketType::Publish;
  pub.flags = 0x06;  // QoS 3
  pub.body = bytes({0, 1, 't'});
  CHECK_FALSE(parse_publish(pub));
  pub.flags = 0x02;  // QoS 1 without packet id
  CHECK_FALSE(parse_publish(pub));
  pub.body = bytes({0, 1, 't', 0, 0});  // packet id 0 is not allowed
  CHECK_FALSE(parse_publish(pub));
  pub.flags = 0;
  pub.body = bytes({0, 9, 't'});  // topic longer than the body
  CHECK_FALSE(parse_publish(pub));

  Packet suback;
  suback.type = PacketType::Suback;
  suback.body = bytes({0, 1, 0x80});
  CHECK(*parse_suback_code(suback) == 0x80);
  CHECK(*parse_packet_id(suback) == 1);
  Packet puback;
  puback.type = PacketType::Puback;
  puback.body = bytes({0, 1, 2});
  CHECK_FALSE(parse_packet_id(puback));
}

TEST_CASE("zero-copy: PacketView and PublishView point into the decoder's buffer; prepare/commit") {
  std::string wire;
  encode_publish(wire, "devices/a/heartbeat", "1", 0, false, 0);
  encode_publish(wire, "devices/b/status", "online", 1, true, 7);
  Decoder d;
  // recv() straight into the buffer, in two pieces cut inside the second packet.
  const std::size_t cut = wire.size() - 3;
  char* at = d.prepare(4096);
  wire.copy(at, cut, 0);
  d.commit(cut);
  PacketView v;
  REQUIRE(d.next(v) == Decoder::Status::Packet);
  auto p = parse_publish(v);
  REQUIRE(p);
  CHECK(p->topic == "devices/a/heartbeat");
  CHECK(p->payload == "1");
  CHECK(d.next(v) == Decoder::Status::NeedMore);
  at = d.prepare(3);
  wire.copy(at, 3, cut);
  d.commit(3);
  REQUIRE(d.next(v) == Decoder::Status::Packet);
  p = parse_publish(v);
  REQUIRE(p);
  CHECK(p->topic == "devices/b/status");
  CHECK(p->payload == "online");
  CHECK(p->qos == 1);
  CHECK(p->retain);
  CHECK(p->packet_id == 7);
  CHECK(d.buffered() == 0);
  // The owning parser agrees with the view parser on the same bytes.
  const auto owned = parse_publish(Packet{PacketType::Publish, v.flags, std::string(v.body)});
  REQUIRE(owned);
  CHECK(owned->topic == "devices/b/status");
  CHECK(owned->packet_id == 7);
}
