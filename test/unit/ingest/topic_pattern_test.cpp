// Tests presence/ingest/topic_pattern.*: pattern compilation, matching, subscription filters.
#include "presence/ingest/topic_pattern.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using presence::ingest::TopicKind;
using presence::ingest::TopicMatcher;
using presence::ingest::TopicPattern;

namespace {
TopicPattern compile_ok(TopicKind kind, const char* text) {
  std::string error;
  auto p = TopicPattern::compile(kind, text, &error);
  REQUIRE_MESSAGE(p.has_value(), error);
  return *p;
}
std::string compile_error(TopicKind kind, const char* text) {
  std::string error;
  auto p = TopicPattern::compile(kind, text, &error);
  CHECK_FALSE(p.has_value());
  return error;
}
}  // namespace

TEST_CASE("default status pattern captures the id and subscribes with +") {
  const auto p = compile_ok(TopicKind::Status, "devices/{id}/status");
  CHECK(p.filter() == "devices/+/status");
  auto m = p.match("devices/sensor-17/status");
  REQUIRE(m);
  CHECK(m->kind == TopicKind::Status);
  CHECK(m->id == "sensor-17");
  CHECK(m->node.empty());
}

TEST_CASE("level counts must agree") {
  const auto p = compile_ok(TopicKind::Status, "devices/{id}/status");
  CHECK_FALSE(p.match("devices/a/status/extra"));
  CHECK_FALSE(p.match("devices/a"));
  CHECK_FALSE(p.match("devices/a/heartbeat"));
  CHECK_FALSE(p.match("other/a/status"));
  CHECK_FALSE(p.match(""));
  // An empty level is a (bad) id; parse_message rejects it as empty_id.
  auto m = p.match("devices//status");
  REQUIRE(m);
  CHECK(m->id.empty());
}

TEST_CASE("node and id captured from EMQX system topics") {
  const auto p = compile_ok(TopicKind::EmqxDisconnected,
                            "$SYS/brokers/{node}/clients/{id}/disconnected");
  CHECK(p.filter() == "$SYS/brokers/+/clients/+/disconnected");
  auto m = p.match("$SYS/brokers/emqx@10.0.0.1/clients/dev-1/disconnected");
  REQUIRE(m);
  CHECK(m->node == "emqx@10.0.0.1");
  CHECK(m->id == "dev-1");
  CHECK_FALSE(p.match("$SYS/brokers/n/clients/dev-1/connected"));
}

TEST_CASE("plus and trailing hash match without capturing") {
  const auto p = compile_ok(TopicKind::Heartbeat, "site/+/{id}/hb/#");
  CHECK(p.filter() == "site/+/+/hb/#");
  auto m = p.match("site/berlin/d1/hb/a/b");
  REQUIRE(m);
  CHECK(m->id == "d1");
  CHECK(p.match("site/berlin/d1/hb"));  // '#' also matches the parent level
  CHECK_FALSE(p.match("site/berlin/d1"));
}

TEST_CASE("wildcards at the first level never claim $SYS topics") {
  const auto p = compile_ok(TopicKind::Status, "+/{id}/status");
  CHECK(p.match("home/d1/status"));
  CHECK_FALSE(p.match("$SYS/d1/status"));
}

TEST_CASE("invalid patterns are rejected with a reason") {
  CHECK(compile_error(TopicKind::Status, "devices/x{id}/status").find("whole levels") !=
        std::string::npos);
  CHECK(compile_error(TopicKind::Status, "devices/status").find("{id}") != std::string::npos);
  CHECK(compile_error(TopicKind::Status, "a/{id}/{id}").find("only once") != std::string::npos);
  CHECK(compile_error(TopicKind::Status, "a/#/{id}").find("last level") != std::string::npos);
  CHECK(compile_error(TopicKind::Status, "").find("empty") != std::string::npos);
  CHECK(compile_error(TopicKind::Status, "a/b+/{id}").find("whole levels") != std::string::npos);
  // Broker-wide kinds need no {id}.
  CHECK(TopicPattern::compile(TopicKind::Uptime, "$SYS/broker/uptime", nullptr));
  CHECK(TopicPattern::compile(TopicKind::BrokerExtBoot, "$SYS/presence/{node}/boot", nullptr));
}

TEST_CASE("matcher: first pattern wins, filters are deduplicated") {
  TopicMatcher m({compile_ok(TopicKind::Status, "devices/{id}/status"),
                  compile_ok(TopicKind::Heartbeat, "devices/{id}/+"),
                  compile_ok(TopicKind::Heartbeat, "devices/{id}/+")});
  auto a = m.match("devices/d/status");
  REQUIRE(a);
  CHECK(a->kind == TopicKind::Status);
  auto b = m.match("devices/d/ping");
  REQUIRE(b);
  CHECK(b->kind == TopicKind::Heartbeat);
  CHECK_FALSE(m.match("unknown/topic"));
  const auto filters = m.filters();
  REQUIRE(filters.size() == 2);
  CHECK(filters[0] == "devices/+/status");
  CHECK(filters[1] == "devices/+/+");
}

// ---- issue 14: {id+}, label levels, ignore patterns -------------------------------------------

TEST_CASE("{id+}: Zigbee2MQTT names with '/' are one id; the filter ends in #") {
  const auto p = compile_ok(TopicKind::Status, "zigbee2mqtt/{id+}/availability");
  CHECK(p.filter() == "zigbee2mqtt/#");
  auto m = p.match("zigbee2mqtt/living room/lamp/availability");
  REQUIRE(m);
  CHECK(m->id == "living room/lamp");
  m = p.match("zigbee2mqtt/kitchen/availability");
  REQUIRE(m);
  CHECK(m->id == "kitchen");
  m = p.match("zigbee2mqtt/a/b/c/d/availability");
  REQUIRE(m);
  CHECK(m->id == "a/b/c/d");
  CHECK_FALSE(p.match("zigbee2mqtt/availability"));  // at least one level of id
  CHECK_FALSE(p.match("zigbee2mqtt/lamp/state"));
  CHECK_FALSE(p.match("other/lamp/availability"));
  CHECK_FALSE(p.match("zigbee2mqtt"));
}

TEST_CASE("{id+} as the last level takes the rest; levels after it are matched from the end") {
  const auto hb = compile_ok(TopicKind::Heartbeat, "zigbee2mqtt/{id+}");
  CHECK(hb.filter() == "zigbee2mqtt/#");
  auto m = hb.match("zigbee2mqtt/garden/pump");
  REQUIRE(m);
  CHECK(m->id == "garden/pump");
  CHECK_FALSE(hb.match("zigbee2mqtt"));
  const auto set = compile_ok(TopicKind::Ignore, "zigbee2mqtt/{id+}/set/+");
  m = set.match("zigbee2mqtt/garden/pump/set/state");
  REQUIRE(m);
  CHECK(m->id == "garden/pump");
  CHECK_FALSE(set.match("zigbee2mqtt/garden/pump/set"));
  const auto mid = compile_ok(TopicKind::Status, "a/{id+}/{site}/x");
  m = mid.match("a/b/c/berlin/x");
  REQUIRE(m);
  CHECK(m->id == "b/c");
  REQUIRE(m->label_count == 1);
  CHECK(m->labels[0].key == "site");
  CHECK(m->labels[0].value == "berlin");
}

TEST_CASE("label levels: {site} becomes a label, subscribed as +") {
  const auto p = compile_ok(TopicKind::Status, "plant/{site}/{line}/{id}/status");
  CHECK(p.filter() == "plant/+/+/+/status");
  auto m = p.match("plant/berlin/l3/press-1/status");
  REQUIRE(m);
  CHECK(m->id == "press-1");
  REQUIRE(m->label_count == 2);
  CHECK(m->labels[0].key == "site");
  CHECK(m->labels[0].value == "berlin");
  CHECK(m->labels[1].key == "line");
  CHECK(m->labels[1].value == "l3");
}

TEST_CASE("pattern errors of issue 14") {
  CHECK(compile_error(TopicKind::Status, "a/{id+}/#").find("'#' cannot follow {id+}") !=
        std::string::npos);
  CHECK(compile_error(TopicKind::Status, "{id}/{id+}").find("only once") != std::string::npos);
  CHECK(compile_error(TopicKind::Status, "{s}/{s}/{id}").find("{s} appears twice") !=
        std::string::npos);
  CHECK(compile_error(TopicKind::Uptime, "$SYS/{id}").find("must not contain {id}") !=
        std::string::npos);
  // Ignore patterns may name the id shape they skip.
  CHECK(TopicPattern::compile(TopicKind::Ignore, "zigbee2mqtt/{id+}/set", nullptr));
  CHECK(TopicPattern::compile(TopicKind::Ignore, "zigbee2mqtt/bridge/#", nullptr));
}

TEST_CASE("ignore patterns are matched but never subscribed") {
  TopicMatcher m({compile_ok(TopicKind::Ignore, "zigbee2mqtt/bridge/#"),
                  compile_ok(TopicKind::Heartbeat, "zigbee2mqtt/{id+}")});
  CHECK(m.filters() == std::vector<std::string>{"zigbee2mqtt/#"});
  auto r = m.match("zigbee2mqtt/bridge/logging");
  REQUIRE(r);
  CHECK(r->kind == TopicKind::Ignore);
  r = m.match("zigbee2mqtt/lamp");
  REQUIRE(r);
  CHECK(r->kind == TopicKind::Heartbeat);
}

TEST_CASE("matcher: one TopicMatch filled in place carries nothing over from a failed pattern") {
  // The hot path reuses one TopicMatch for every pattern (ingest_unknown_topic regression): a
  // pattern that captured a label and a node and then failed must not leak them into the next.
  std::vector<TopicPattern> ps;
  ps.push_back(compile_ok(TopicKind::Status, "plant/{site}/{node}/{id}/status"));
  ps.push_back(compile_ok(TopicKind::Heartbeat, "plant/{id}/{x}/hb"));
  ps.push_back(compile_ok(TopicKind::Heartbeat, "plant/{id}/+/+/heartbeat"));
  const TopicMatcher matcher(std::move(ps));
  presence::ingest::TopicMatch m;
  REQUIRE(matcher.match("plant/berlin/n1/press-1/heartbeat", m));
  CHECK(m.kind == TopicKind::Heartbeat);
  CHECK(m.id == "berlin");
  CHECK(m.node.empty());
  CHECK(m.label_count == 0);
  CHECK(m.source == 0);
  // The same object again, now for a topic no pattern claims.
  CHECK_FALSE(matcher.match("plant/berlin/n1/press-1/other", m));
  CHECK_FALSE(matcher.match("other/topic/1", m));
}

TEST_CASE("first-level literal: a whole level, not a prefix") {
  const auto p = compile_ok(TopicKind::Status, "devices/{id}/status");
  CHECK_FALSE(p.match("devicesX/a/status"));
  CHECK_FALSE(p.match("device/a/status"));
  CHECK_FALSE(p.match("devices"));
  CHECK(p.match("devices/a/status"));
  const auto h = compile_ok(TopicKind::Heartbeat, "devices/{id}/#");
  CHECK(h.match("devices/a"));
  CHECK_FALSE(h.match("devicesa"));
  const auto sys = compile_ok(TopicKind::Uptime, "$SYS/broker/uptime");
  CHECK(sys.match("$SYS/broker/uptime"));
  CHECK_FALSE(sys.match("$SYSX/broker/uptime"));
}
