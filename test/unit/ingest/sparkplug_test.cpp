// Sparkplug B (issue 15): topics, the protobuf codec, STATE, and the edge-node session rules
// (bdSeq matching with wrap, the will that overtakes its NBIRTH, Rebirth rate limit) on a
// simulated clock.
#include "presence/ingest/sparkplug.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace presence;
using namespace presence::ingest;
using namespace presence::ingest::sparkplug;
using namespace std::chrono_literals;

namespace {

std::string birth(std::uint64_t bd) {
  PayloadSpec s;
  s.timestamp = 1700000000000;
  s.seq = 0;
  s.bd_seq = bd;
  return encode(s);
}
std::string death(std::uint64_t bd) {
  PayloadSpec s;
  s.timestamp = 1700000000000;
  s.bd_seq = bd;
  return encode(s);
}
std::string data(std::uint64_t seq = 1) {
  PayloadSpec s;
  s.timestamp = 1700000000000;
  s.seq = seq;
  s.values = {{"temperature", 21.5}};
  return encode(s);
}

struct Feed {
  Tracker tracker;
  std::vector<Parsed> events;
  std::vector<Command> commands;
  std::string detail;
  explicit Feed(Options o = {}) : tracker(std::move(o)) {}
  ParseError send(const std::string& topic, const std::string& payload, std::int64_t t_ms = 0, bool retained = false) {
    events.clear();
    commands.clear();
    detail.clear();
    return tracker.on_message(topic, payload, retained, core::mono_ms(t_ms), 1700000000000, events, commands, &detail);
  }
  static std::string label(const Parsed& p, const std::string& key) {
    for (const auto& [k, v] : p.labels)
      if (k == key) return v;
    return {};
  }
};

}  // namespace

TEST_CASE("sparkplug topics: node, device, STATE; everything else refused") {
  auto n = parse_topic("spBv1.0/plant1/NBIRTH/edge7");
  REQUIRE(n);
  CHECK(n->type == MessageType::NBIRTH);
  CHECK(n->group == "plant1");
  CHECK(n->edge == "edge7");
  CHECK(n->device.empty());
  auto d = parse_topic("spBv1.0/plant1/DDEATH/edge7/pump-3");
  REQUIRE(d);
  CHECK(d->type == MessageType::DDEATH);
  CHECK(d->device == "pump-3");
  auto s = parse_topic("spBv1.0/STATE/scada-1");
  REQUIRE(s);
  CHECK(s->type == MessageType::STATE);
  CHECK(s->host == "scada-1");
  for (const char* bad : {"spBv1.0/plant1/NBIRTH", "spBv1.0/plant1/NBIRTH/edge7/dev", "spBv1.0/plant1/DBIRTH/edge7",
                          "spBv1.0/plant1/XBIRTH/edge7", "spBv1.0//NBIRTH/edge7", "spBv1.0/plant1/NBIRTH/",
                          "spBv1.0/plant1/NBIRTH/+", "spAv1.0/plant1/NBIRTH/edge7", "spBv1.0/STATE",
                          "spBv1.0/STATE/a/b", "spBv1.0/g/DDATA/e/d/extra", ""}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_topic(bad));
  }
}

TEST_CASE("sparkplug payload: encode/decode round trip, garbage and a bad bdSeq give a clear error") {
  PayloadSpec spec;
  spec.timestamp = 1700000000123;
  spec.seq = 7;
  spec.bd_seq = 255;
  Payload p;
  std::string err;
  REQUIRE(decode(encode(spec), p, err));
  CHECK(p.timestamp == 1700000000123u);
  CHECK(p.seq == 7u);
  CHECK(p.bd_seq == 255u);
  CHECK_FALSE(p.rebirth);

  PayloadSpec rb;
  rb.rebirth = true;
  REQUIRE(decode(encode(rb), p, err));
  CHECK(p.rebirth);
  CHECK_FALSE(p.bd_seq);

  CHECK_FALSE(decode(std::string("\xff\xff\xff\xff\xff", 5), p, err));
  CHECK(err.find("not a Sparkplug B protobuf payload") == 0);
  CHECK_FALSE(decode("{\"online\":true}", p, err));

  // bdSeq is 0..255 (Sparkplug 3.0): 256 is refused, not truncated to 0.
  PayloadSpec big;
  big.bd_seq = 256;
  CHECK_FALSE(decode(encode(big), p, err));
  CHECK(err == "bdSeq 256 out of range 0..255");
}

TEST_CASE("sparkplug STATE: 3.0 JSON, anything else refused") {
  State st;
  std::string err;
  REQUIRE(parse_state(encode_state({true, 42}), st, err));
  CHECK(st.online);
  CHECK(st.timestamp == 42u);
  REQUIRE(parse_state("{\"online\":false,\"timestamp\":1700000000000}", st, err));
  CHECK_FALSE(st.online);
  CHECK_FALSE(parse_state("OFFLINE", st, err));
  CHECK_FALSE(parse_state("{\"online\":\"no\",\"timestamp\":1}", st, err));
  CHECK(err == "STATE payload without a boolean \"online\"");
  CHECK_FALSE(parse_state("{\"online\":true,\"timestamp\":-1}", st, err));
}

TEST_CASE("NBIRTH, DBIRTH, NDEATH: node then its devices, labels make the edge node the parent") {
  Options o;
  o.primary_host = "scada-1";
  Feed f(o);
  REQUIRE(f.send("spBv1.0/plant1/NBIRTH/edge7", birth(3)) == ParseError::None);
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0].id == "plant1/edge7");
  CHECK(f.events[0].kind == core::EventKind::Connected);
  CHECK(Feed::label(f.events[0], "parent") == "scada-1");
  CHECK(Feed::label(f.events[0], "sparkplug_group") == "plant1");
  CHECK(f.tracker.bd_seq("plant1/edge7") == 3);

  for (int i = 0; i < 3; ++i) {
    REQUIRE(f.send("spBv1.0/plant1/DBIRTH/edge7/pump-" + std::to_string(i), data()) == ParseError::None);
    REQUIRE(f.events.size() == 1);
    CHECK(f.events[0].id == "plant1/edge7/pump-" + std::to_string(i));
    CHECK(Feed::label(f.events[0], "parent") == "plant1/edge7");
    CHECK(Feed::label(f.events[0], "edge_node") == "plant1/edge7");
  }
  // Data from a known device is not news: no event (report by exception is silent by design).
  REQUIRE(f.send("spBv1.0/plant1/DDATA/edge7/pump-1", data(4)) == ParseError::None);
  CHECK(f.events.empty());

  REQUIRE(f.send("spBv1.0/plant1/NDEATH/edge7", death(3)) == ParseError::None);
  REQUIRE(f.events.size() == 4);
  CHECK(f.events[0].id == "plant1/edge7");
  CHECK(f.events[0].kind == core::EventKind::Disconnected);
  CHECK(f.events[0].reason == core::DisconnectReason::LastWill);
  for (int i = 1; i < 4; ++i) CHECK(f.events[static_cast<std::size_t>(i)].kind == core::EventKind::Disconnected);
  CHECK_FALSE(f.tracker.alive("plant1/edge7"));
  // The same will again is a duplicate.
  REQUIRE(f.send("spBv1.0/plant1/NDEATH/edge7", death(3)) == ParseError::None);
  CHECK(f.events.empty());
}

TEST_CASE("bdSeq: a stale NDEATH (an earlier session's late will) is ignored, also across the wrap 255 -> 0") {
  Feed f;
  REQUIRE(f.send("spBv1.0/g/NBIRTH/e", birth(254)) == ParseError::None);
  REQUIRE(f.send("spBv1.0/g/NDEATH/e", death(254)) == ParseError::None);
  CHECK(f.events.size() == 1);
  REQUIRE(f.send("spBv1.0/g/NBIRTH/e", birth(255)) == ParseError::None);
  CHECK(f.events.size() == 1);
  // The node reconnects (bdSeq wraps to 0) before the broker delivered the will of session 255.
  REQUIRE(f.send("spBv1.0/g/NBIRTH/e", birth(0)) == ParseError::None);
  CHECK(f.tracker.bd_seq("g/e") == 0);
  REQUIRE(f.send("spBv1.0/g/NDEATH/e", death(255)) == ParseError::None);
  CHECK(f.events.empty());
  CHECK(f.tracker.alive("g/e"));
  REQUIRE(f.send("spBv1.0/g/NDEATH/e", death(254)) == ParseError::None);
  CHECK(f.events.empty());
  CHECK(f.tracker.counters().stale_deaths == 2);
  // The current session's will is not stale.
  REQUIRE(f.send("spBv1.0/g/NDEATH/e", death(0)) == ParseError::None);
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0].kind == core::EventKind::Disconnected);
  CHECK_FALSE(f.tracker.alive("g/e"));
}

TEST_CASE("bdSeq race: the will of the next session overtakes its NBIRTH; the late birth does not bring the node back") {
  Feed f;
  REQUIRE(f.send("spBv1.0/g/NBIRTH/e", birth(255)) == ParseError::None);
  REQUIRE(f.send("spBv1.0/g/DBIRTH/e/d1", data()) == ParseError::None);
  // Session 0 (after the wrap) connected and died; its NDEATH arrives before its NBIRTH.
  REQUIRE(f.send("spBv1.0/g/NDEATH/e", death(0)) == ParseError::None);
  REQUIRE(f.events.size() == 2);  // node and its device
  CHECK(f.tracker.counters().deaths_ahead == 1);
  REQUIRE(f.send("spBv1.0/g/NBIRTH/e", birth(0)) == ParseError::None);
  CHECK(f.events.empty());
  CHECK_FALSE(f.tracker.alive("g/e"));
  CHECK(f.tracker.counters().births_dead_on_arrival == 1);
  // The next real session is born normally.
  REQUIRE(f.send("spBv1.0/g/NBIRTH/e", birth(1)) == ParseError::None);
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0].kind == core::EventKind::Connected);
}

TEST_CASE("DDEATH: that device only; a DDEATH of a node that is down is stale") {
  Feed f;
  REQUIRE(f.send("spBv1.0/g/NBIRTH/e", birth(1)) == ParseError::None);
  REQUIRE(f.send("spBv1.0/g/DBIRTH/e/a", data()) == ParseError::None);
  REQUIRE(f.send("spBv1.0/g/DBIRTH/e/b", data()) == ParseError::None);
  REQUIRE(f.send("spBv1.0/g/DDEATH/e/a", data(9)) == ParseError::None);
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0].id == "g/e/a");
  CHECK(f.events[0].kind == core::EventKind::Disconnected);
  REQUIRE(f.send("spBv1.0/g/NDEATH/e", death(1)) == ParseError::None);
  REQUIRE(f.events.size() == 2);  // the node and b (a is already gone)
  CHECK(f.events[1].id == "g/e/b");
  REQUIRE(f.send("spBv1.0/g/DDEATH/e/b", data(10)) == ParseError::None);
  CHECK(f.events.empty());
  CHECK(f.tracker.counters().stale_device_deaths == 1);
}

TEST_CASE("malformed input: a clear error, a counter, no event, never a crash") {
  Feed f;
  CHECK(f.send("spBv1.0/g/NBIRTH/e", std::string("\x0a\xff\xff", 3)) == ParseError::BadPayload);
  CHECK(f.detail.find("not a Sparkplug B protobuf payload") == 0);
  CHECK(f.events.empty());
  CHECK(f.send("spBv1.0/g/NBIRTH/e", data()) == ParseError::BadPayload);
  CHECK(f.detail == "NBIRTH without a bdSeq metric");
  CHECK(f.send("spBv1.0/g/NDEATH/e", data()) == ParseError::BadPayload);
  CHECK(f.send("spBv1.0/g/BOGUS/e", data()) == ParseError::UnknownTopic);
  CHECK(f.send("spBv1.0/STATE/h", "nope") == ParseError::BadJson);
  CHECK(f.send("spBv1.0/g/NBIRTH/" + std::string(300, 'x'), birth(1)) == ParseError::IdTooLong);
  CHECK(f.tracker.counters().bad_payloads == 4);
  CHECK(f.tracker.counters().bad_topics == 1);
  CHECK(f.events.empty());
}

TEST_CASE("primary host STATE: online/offline events for the host; older timestamps are stale; retained is a resync") {
  Feed f;
  REQUIRE(f.send("spBv1.0/STATE/scada-1", encode_state({true, 100}), 0, true) == ParseError::None);
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0].what == Parsed::What::DeviceResync);
  CHECK(f.events[0].id == "scada-1");
  CHECK(f.events[0].labels.empty());
  REQUIRE(f.send("spBv1.0/STATE/scada-1", encode_state({false, 200})) == ParseError::None);
  REQUIRE(f.events.size() == 1);
  CHECK(f.events[0].what == Parsed::What::DeviceEvent);
  CHECK(f.events[0].kind == core::EventKind::Disconnected);
  REQUIRE(f.send("spBv1.0/STATE/scada-1", encode_state({true, 150})) == ParseError::None);
  CHECK(f.events.empty());
  CHECK(f.tracker.counters().stale_states == 1);
}

TEST_CASE("Rebirth: only when configured, for a node whose NBIRTH was missed, at most once per interval (T-1/T)") {
  {
    Feed off;
    REQUIRE(off.send("spBv1.0/g/DDATA/e/d", data()) == ParseError::None);
    CHECK(off.commands.empty());
    REQUIRE(off.events.size() == 2);  // the node is alive (it sends), and its device
  }
  Options o;
  o.rebirth = true;
  o.rebirth_interval = 60s;
  Feed f(o);
  REQUIRE(f.send("spBv1.0/g/NDATA/e", data(), 1000) == ParseError::None);
  REQUIRE(f.commands.size() == 1);
  CHECK(f.commands[0].topic == "spBv1.0/g/NCMD/e");
  Payload p;
  std::string err;
  REQUIRE(decode(f.commands[0].payload, p, err));
  CHECK(p.rebirth);
  // Asked already: its data within the interval asks nothing more (suppressed). Its death and
  // data again do, after the interval.
  REQUIRE(f.send("spBv1.0/g/NDATA/e", data(), 2000) == ParseError::None);
  CHECK(f.commands.empty());
  REQUIRE(f.send("spBv1.0/g/NDEATH/e", death(9), 3000) == ParseError::None);
  REQUIRE(f.send("spBv1.0/g/NDATA/e", data(), 1000 + 60000 - 1) == ParseError::None);
  CHECK(f.commands.empty());
  CHECK(f.tracker.counters().rebirths_suppressed == 2);
  REQUIRE(f.send("spBv1.0/g/NDEATH/e", death(9), 1000 + 60000 - 1) == ParseError::None);
  REQUIRE(f.send("spBv1.0/g/NDATA/e", data(), 1000 + 60000) == ParseError::None);
  CHECK(f.commands.size() == 1);
  CHECK(f.tracker.counters().rebirths_requested == 2);
  // After a real NBIRTH no rebirth is ever asked.
  REQUIRE(f.send("spBv1.0/g/NBIRTH/e", birth(10), 200000) == ParseError::None);
  REQUIRE(f.send("spBv1.0/g/NDEATH/e", death(10), 200001) == ParseError::None);
  REQUIRE(f.send("spBv1.0/g/NDATA/e", data(), 400000) == ParseError::None);
  CHECK(f.commands.empty());
  // A node alive all along that ignores the request is asked again once the interval is over
  // (T-1: not yet; T: again), never more often.
  Feed g(o);
  REQUIRE(g.send("spBv1.0/g/NDATA/e", data(), 1000) == ParseError::None);
  CHECK(g.commands.size() == 1);
  REQUIRE(g.send("spBv1.0/g/NDATA/e", data(), 1000 + 60000 - 1) == ParseError::None);
  CHECK(g.commands.empty());
  REQUIRE(g.send("spBv1.0/g/DDATA/e/d", data(), 1000 + 60000) == ParseError::None);
  CHECK(g.commands.size() == 1);
  REQUIRE(g.send("spBv1.0/g/NDATA/e", data(), 1000 + 60000 + 1) == ParseError::None);
  CHECK(g.commands.empty());
  CHECK(g.tracker.counters().rebirths_requested == 2);
  CHECK(g.tracker.counters().rebirths_suppressed == 2);
}
