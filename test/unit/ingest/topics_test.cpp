// Unit tests for presence/ingest/topics.* beyond compile_ingest (source_test.cpp): filter overlap
// and which heartbeat filters the bulk reader may take (issue 16 item 2).
#include "presence/ingest/topics.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace presence::ingest;

TEST_CASE("filters_overlap: levels, '+', '#', and the '$' rule, both ways round") {
  struct Case {
    const char* a;
    const char* b;
    bool overlap;
  };
  const Case cases[] = {
      {"devices/+/heartbeat", "devices/+/status", false},
      {"devices/+/heartbeat", "devices/d1/heartbeat", true},
      {"devices/+/heartbeat", "devices/#", true},
      {"devices/+/heartbeat", "#", true},
      {"devices/+/heartbeat", "+/+/+", true},
      {"devices/+/heartbeat", "+/+", false},
      {"devices/+/heartbeat", "devices/+/heartbeat/extra", false},
      {"devices/+/heartbeat", "devices/+/heartbeat/#", true},  // '#' also matches the parent level
      {"zigbee2mqtt/#", "zigbee2mqtt/#", true},
      {"a/b", "a/b", true},
      {"a/b", "a/c", false},
      {"a", "a/b", false},
      {"$SYS/broker/publish/messages/dropped", "#", false},
      {"$SYS/broker/publish/messages/dropped", "+/broker/#", false},
      {"$SYS/broker/publish/messages/dropped", "$SYS/#", true},
      {"spBv1.0/#", "devices/+/heartbeat", false},
      {"presence/service/probe/p1", "presence/#", true},
      {"", "#", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.a);
    CAPTURE(c.b);
    CHECK(filters_overlap(c.a, c.b) == c.overlap);
    CHECK(filters_overlap(c.b, c.a) == c.overlap);
  }
}

TEST_CASE("split_heartbeat_filters: heartbeats alone go to the bulk reader, shared ones stay on Paho") {
  TopicOptions t;  // devices/{id}/status, devices/{id}/heartbeat, $SYS ...
  TopicMatcher m;
  std::vector<std::string> errors;
  REQUIRE(compile_topics(t, m, errors));
  FilterSplit s = split_heartbeat_filters(m, {"$SYS/broker/publish/messages/dropped"});
  CHECK(s.bulk == std::vector<std::string>{"devices/+/heartbeat"});
  CHECK(std::find(s.paho.begin(), s.paho.end(), "devices/+/status") != s.paho.end());
  CHECK(std::find(s.paho.begin(), s.paho.end(), "devices/+/heartbeat") == s.paho.end());
  CHECK(s.bulk.size() + s.paho.size() == m.filters().size());

  // A heartbeat pattern whose filter a status pattern shares (Zigbee2MQTT-like: both
  // "zigbee2mqtt/#"): the status must keep QoS 1 and the persistent session, so both stay.
  t.status = {"devices/{id}/status", "zigbee2mqtt/{id+}/availability"};
  t.heartbeat = {"devices/{id}/heartbeat", "zigbee2mqtt/{id+}"};
  REQUIRE(compile_topics(t, m, errors));
  s = split_heartbeat_filters(m, {});
  CHECK(s.bulk == std::vector<std::string>{"devices/+/heartbeat"});
  CHECK(std::find(s.paho.begin(), s.paho.end(), "zigbee2mqtt/#") != s.paho.end());

  // A subscription outside the matcher that covers the heartbeats (here a catch-all): none go.
  s = split_heartbeat_filters(m, {"#"});
  CHECK(s.bulk.empty());

  // No heartbeat patterns (broker-ext aggregation: topics.heartbeat ""): nothing to take.
  t.heartbeat = {};
  t.status = {"devices/{id}/status"};
  REQUIRE(compile_topics(t, m, errors));
  CHECK(split_heartbeat_filters(m, {}).bulk.empty());
}
