// Tests presence/ingest/topic_pattern.*: pattern compilation, matching, subscription filters.
#include "presence/ingest/topic_pattern.h"

#include <doctest/doctest.h>

#include <string>

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
  CHECK(compile_error(TopicKind::Status, "a/{id}/{id}").find("twice") != std::string::npos);
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
