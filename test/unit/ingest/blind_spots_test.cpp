// Tests presence/ingest/blind_spots.*: which fleet events the service feeds the engine, and when.
#include "presence/ingest/blind_spots.h"

#include <doctest/doctest.h>

using presence::core::EventKind;
using presence::ingest::BlindSpots;
using Kinds = BlindSpots::Kinds;

TEST_CASE("first connect: IngestRestored only once subscribed, no restart claimed") {
  BlindSpots b(/*persistent_session=*/true);
  CHECK_FALSE(b.connected());
  b.connack(false);  // a first connect never has a session: not evidence
  CHECK(b.subscribed() == Kinds{EventKind::IngestRestored});
  CHECK(b.connected());
  CHECK(b.subscribed().empty());  // a second SUBACK changes nothing
  CHECK(b.restarts() == 0);
}

TEST_CASE("connection lost: IngestLost once; reconnect: IngestRestored") {
  BlindSpots b(false);
  CHECK(b.connection_lost().empty());  // never connected: nothing to lose
  b.subscribed();
  CHECK(b.connection_lost() == Kinds{EventKind::IngestLost});
  CHECK(b.connection_lost().empty());
  b.connack(false);  // clean session: session-present is always 0, not evidence
  CHECK(b.subscribed() == Kinds{EventKind::IngestRestored});
  CHECK(b.restarts() == 0);
}

TEST_CASE("persistent session lost on reconnect means the broker restarted") {
  BlindSpots b(true);
  b.connack(false);
  b.subscribed();
  b.connection_lost();
  b.connack(true);  // session kept: broker did not restart (network blip)
  CHECK(b.subscribed() == Kinds{EventKind::IngestRestored});
  b.connection_lost();
  b.connack(false);
  CHECK(b.subscribed() == Kinds{EventKind::IngestRestored, EventKind::BrokerRestarted});
  CHECK(b.restarts() == 1);
  CHECK(b.last_reason() == "persistent session lost");
}

TEST_CASE("MQTT 5 server shutting down is restart evidence") {
  BlindSpots b(false);
  b.subscribed();
  b.server_shutting_down();
  b.connection_lost();
  CHECK(b.subscribed() == Kinds{EventKind::IngestRestored, EventKind::BrokerRestarted});
}

TEST_CASE("boot id change and uptime reset: one BrokerRestarted per reconnect") {
  BlindSpots b(false);
  b.subscribed();
  CHECK(b.boot("n", "boot-1").empty());  // first sight
  CHECK(b.uptime("n", 100).empty());
  b.connection_lost();
  b.subscribed();
  CHECK(b.boot("n", "boot-2") == Kinds{EventKind::BrokerRestarted});
  CHECK(b.uptime("n", 3).empty());  // same restart, already reported
  CHECK(b.restarts() == 1);
  b.connection_lost();
  b.subscribed();
  CHECK(b.uptime("n", 1) == Kinds{EventKind::BrokerRestarted});  // a new restart
  CHECK(b.last_reason() == "$SYS uptime reset");
  CHECK(b.restarts() == 2);
}

TEST_CASE("broker-ext sessions increase across boots") {
  BlindSpots b(false);
  CHECK(b.session("n", 0) == 0);  // unknown stays unknown
  b.boot("n", "boot-1");
  const auto old_session = b.session("n", 900);
  b.boot("n", "boot-2");
  const auto new_session = b.session("n", 1);
  CHECK(new_session > old_session);
  CHECK(b.session("n", 2) > new_session);
  b.boot("n", "boot-2");  // same boot again: same epoch
  CHECK(b.session("n", 1) == new_session);
  CHECK(b.session("other", 5) == 5);  // a node without a known boot: epoch 0
}
