// Tests presence/ingest/payload.*: every payload form, malformed input, limits, labels, and the
// broker restart watch. Pure functions: no broker, no clock.
#include "presence/ingest/payload.h"

#include <doctest/doctest.h>

#include <string>

using namespace presence::ingest;
using presence::core::DisconnectReason;
using presence::core::EventKind;
using presence::core::Source;
using What = Parsed::What;

namespace {

const ParseLimits kLimits{};

TopicMatcher default_matcher() {
  std::vector<TopicPattern> ps;
  auto add = [&](TopicKind k, const char* t) { ps.push_back(*TopicPattern::compile(k, t, nullptr)); };
  add(TopicKind::Status, "devices/{id}/status");
  add(TopicKind::Heartbeat, "devices/{id}/heartbeat");
  add(TopicKind::EmqxConnected, "$SYS/brokers/{node}/clients/{id}/connected");
  add(TopicKind::EmqxDisconnected, "$SYS/brokers/{node}/clients/{id}/disconnected");
  add(TopicKind::BrokerExtBoot, "$SYS/presence/{node}/boot");
  add(TopicKind::BrokerExtHeartbeat, "$SYS/presence/{node}/heartbeat");
  add(TopicKind::BrokerExtConnected, "$SYS/presence/{node}/clients/{id}/connected");
  add(TopicKind::BrokerExtDisconnected, "$SYS/presence/{node}/clients/{id}/disconnected");
  add(TopicKind::BrokerExtAlive, "$SYS/presence/{node}/alive");
  add(TopicKind::Uptime, "$SYS/broker/uptime");
  return TopicMatcher(std::move(ps));
}

std::string label(const Parsed& p, const std::string& key) {
  for (const auto& [k, v] : p.labels)
    if (k == key) return v;
  return "<none>";
}

}  // namespace

TEST_CASE("status: plain online/offline, case and whitespace tolerant") {
  auto on = parse_status("online", kLimits);
  CHECK(on.what == What::DeviceEvent);
  CHECK(on.kind == EventKind::Connected);
  CHECK(on.source == Source::Status);
  CHECK(on.error == ParseError::None);

  auto off = parse_status(" OFFLINE\n", kLimits);
  CHECK(off.what == What::DeviceEvent);
  CHECK(off.kind == EventKind::Disconnected);
  CHECK(off.reason == DisconnectReason::LastWill);  // plain "offline" is the usual will payload
}

TEST_CASE("status: JSON with state, reason and labels") {
  auto p = parse_status(
      R"({"state":"online","firmware":"1.2.3","site":"berlin","rssi":-70,)"
      R"("labels":{"model":"x1","rev":3,"beta":true}})",
      kLimits);
  CHECK(p.what == What::DeviceEvent);
  CHECK(p.kind == EventKind::Connected);
  CHECK(p.error == ParseError::None);
  CHECK(label(p, "firmware") == "1.2.3");
  CHECK(label(p, "site") == "berlin");
  CHECK(label(p, "model") == "x1");
  CHECK(label(p, "rev") == "3");
  CHECK(label(p, "beta") == "true");
  CHECK(label(p, "rssi") == "<none>");  // not a label key: telemetry must not churn labels

  auto g = parse_status(R"({"state":"offline","reason":"graceful"})", kLimits);
  CHECK(g.kind == EventKind::Disconnected);
  CHECK(g.reason == DisconnectReason::Graceful);
  auto w = parse_status(R"({"state":"offline"})", kLimits);
  CHECK(w.reason == DisconnectReason::LastWill);
  auto k = parse_status(R"({"state":"offline","reason":"keepalive_timeout"})", kLimits);
  CHECK(k.reason == DisconnectReason::KeepaliveTimeout);
  auto u = parse_status(R"({"state":"offline","reason":"cosmic-ray"})", kLimits);
  CHECK(u.reason == DisconnectReason::Unknown);
}

TEST_CASE("status: malformed payloads are rejected with the right kind") {
  CHECK(parse_status("{\"state\":", kLimits).error == ParseError::BadJson);
  CHECK(parse_status("{\"state\":", kLimits).what == What::Reject);
  CHECK(parse_status("[1,2]", kLimits).error == ParseError::BadJson);
  CHECK(parse_status(R"({"labels":{}})", kLimits).error == ParseError::BadPayload);
  CHECK(parse_status(R"({"state":1})", kLimits).error == ParseError::BadPayload);
  CHECK(parse_status(R"({"state":"sleeping"})", kLimits).error == ParseError::BadPayload);
  CHECK(parse_status("maybe", kLimits).error == ParseError::BadPayload);
  CHECK(parse_status(std::string(kLimits.max_payload_bytes + 1, 'x'), kLimits).error ==
        ParseError::PayloadTooLarge);
  // Exactly at the limit is still parsed (and is then just a bad payload).
  CHECK(parse_status(std::string(kLimits.max_payload_bytes, 'x'), kLimits).error ==
        ParseError::BadPayload);
}

TEST_CASE("status: empty payload clears a retained status and is ignored, not an error") {
  auto p = parse_status("", kLimits);
  CHECK(p.what == What::Ignore);
  CHECK(p.error == ParseError::None);
}

TEST_CASE("labels: bad labels are dropped and counted, the message is kept") {
  auto nested = parse_status(R"({"state":"online","labels":{"ok":"1","deep":{"a":1},"n":null}})",
                             kLimits);
  CHECK(nested.what == What::DeviceEvent);
  CHECK(nested.error == ParseError::BadLabel);
  CHECK(label(nested, "ok") == "1");
  CHECK(label(nested, "deep") == "<none>");

  auto not_object = parse_status(R"({"state":"online","labels":"x"})", kLimits);
  CHECK(not_object.what == What::DeviceEvent);
  CHECK(not_object.error == ParseError::BadLabel);

  ParseLimits small;
  small.max_labels = 2;
  small.max_label_key_bytes = 4;
  small.max_label_value_bytes = 3;
  auto many = parse_status(R"({"state":"online","labels":{"a":"1","b":"2","c":"3"}})", small);
  CHECK(many.labels.size() == 2);
  CHECK(many.error == ParseError::BadLabel);
  auto long_key = parse_status(R"({"state":"online","labels":{"abcd":"1","abcde":"2"}})", small);
  CHECK(long_key.labels.size() == 1);
  CHECK(long_key.error == ParseError::BadLabel);
  auto long_value = parse_status(R"({"state":"online","labels":{"a":"123","b":"1234"}})", small);
  CHECK(long_value.labels.size() == 1);
  CHECK(label(long_value, "a") == "123");
}

TEST_CASE("heartbeat: any payload is proof of life, JSON may add labels") {
  for (const char* body : {"", "1", "ping", "{\"seq\":4}"}) {
    auto p = parse_heartbeat(body, kLimits);
    CHECK(p.what == What::DeviceEvent);
    CHECK(p.kind == EventKind::Heartbeat);
    CHECK(p.source == Source::Heartbeat);
    CHECK(p.error == ParseError::None);
  }
  auto l = parse_heartbeat(R"({"firmware":"2.0","labels":{"site":"oslo"}})", kLimits);
  CHECK(label(l, "firmware") == "2.0");
  CHECK(label(l, "site") == "oslo");
  auto bad = parse_heartbeat("{oops", kLimits);
  CHECK(bad.what == What::DeviceEvent);  // still a heartbeat
  CHECK(bad.error == ParseError::BadJson);
  auto huge = parse_heartbeat(std::string(kLimits.max_payload_bytes + 1, '{'), kLimits);
  CHECK(huge.what == What::DeviceEvent);
  CHECK(huge.error == ParseError::PayloadTooLarge);
}

// Found by test/fuzz/ingest_fuzz.cpp (issue 19): a float past 2^64 was converted to uint64, which is
// undefined behaviour. gcc on x86 happens to produce 0 there, so this test catches the old code in
// the ASan+UBSan stage of scripts/test.sh (UBSan halts on float-cast-overflow), not in stage 1.
TEST_CASE("emqx and broker-ext: a session number out of uint64 range is no session") {
  for (const char* v : {"2.1e21", "18446744073709551616.0", "1e300"}) {
    CAPTURE(v);
    const auto c = parse_emqx(true, std::string(R"({"clientid":"d1","connected_at":)") + v + "}",
                              kLimits);
    CHECK(c.what == What::DeviceEvent);
    CHECK(c.session == 0);
    const auto b = parse_broker_ext_client(
        false, std::string(R"({"v":1,"boot":"b","seq":3,"clientid":"d1","session":)") + v + "}",
        kLimits);
    CHECK(b.session == 0);
  }
  // In range, a float still counts (some brokers' JSON encoders write 1.7e12).
  CHECK(parse_emqx(true, R"({"clientid":"d1","connected_at":1.7e12})", kLimits).session ==
        1700000000000ull);
}

TEST_CASE("emqx: connected_at is the session, reasons map onto DisconnectReason") {
  auto c = parse_emqx(true, R"({"clientid":"d1","connected_at":1700000000123,"ts":1})", kLimits);
  CHECK(c.what == What::DeviceEvent);
  CHECK(c.kind == EventKind::Connected);
  CHECK(c.source == Source::Emqx);
  CHECK(c.session == 1700000000123ull);

  auto d = parse_emqx(false, R"({"clientid":"d1","reason":"takenover","connected_at":5})", kLimits);
  CHECK(d.kind == EventKind::Disconnected);
  CHECK(d.reason == DisconnectReason::Takeover);
  CHECK(d.session == 5);

  CHECK(emqx_reason("normal") == DisconnectReason::Graceful);
  CHECK(emqx_reason("kicked") == DisconnectReason::BrokerInitiated);
  CHECK(emqx_reason("discarded") == DisconnectReason::Takeover);
  CHECK(emqx_reason("takenover") == DisconnectReason::Takeover);
  CHECK(emqx_reason("keepalive_timeout") == DisconnectReason::KeepaliveTimeout);
  CHECK(emqx_reason("sock_closed") == DisconnectReason::Unknown);

  auto broken = parse_emqx(false, "not json", kLimits);
  CHECK(broken.what == What::DeviceEvent);  // the topic alone says it disconnected
  CHECK(broken.error == ParseError::BadJson);
  CHECK(broken.session == 0);
}

TEST_CASE("broker-ext: session, boot, superseded means takeover") {
  auto c = parse_broker_ext_client(
      true, R"({"v":1,"boot":"b-1","seq":7,"session":42,"clientid":"d1"})", kLimits);
  CHECK(c.kind == EventKind::Connected);
  CHECK(c.source == Source::BrokerExt);
  CHECK(c.session == 42);
  CHECK(c.boot == "b-1");
  auto seq_only = parse_broker_ext_client(true, R"({"v":1,"boot":9,"seq":7})", kLimits);
  CHECK(seq_only.session == 7);
  CHECK(seq_only.boot == "9");

  auto sup = parse_broker_ext_client(
      false, R"({"v":1,"boot":"b-1","session":41,"clientid":"d1","superseded":true})", kLimits);
  CHECK(sup.kind == EventKind::Disconnected);
  CHECK(sup.reason == DisconnectReason::Takeover);
  auto plain = parse_broker_ext_client(
      false, R"({"v":1,"boot":"b-1","session":41,"superseded":false})", kLimits);
  CHECK(plain.reason == DisconnectReason::Unknown);  // Mosquitto 2.0 gives no reason

  auto boot = parse_broker_ext_boot(R"({"v":1,"boot":"abc","seq":0})", kLimits);
  CHECK(boot.what == What::BrokerBoot);
  CHECK(boot.boot == "abc");
  CHECK(parse_broker_ext_boot(R"({"v":1})", kLimits).error == ParseError::BadPayload);
  CHECK(parse_broker_ext_boot("{", kLimits).error == ParseError::BadJson);
}

TEST_CASE("broker-ext alive: one heartbeat per listed id, a bad id costs only itself") {
  auto p = parse_broker_ext_alive(
      R"({"v":1,"node":"n1","boot":"b-7","seq":3,"ids":["dev-1","dev-2","dev-3"]})", kLimits);
  CHECK(p.what == What::AliveBatch);
  CHECK(p.error == ParseError::None);
  CHECK(p.kind == EventKind::Heartbeat);
  CHECK(p.boot == "b-7");
  CHECK(p.ids == std::vector<std::string>{"dev-1", "dev-2", "dev-3"});

  // max_id_bytes (256): T is kept, T+1 is dropped and counted; so are non-strings and "".
  const std::string at(256, 'a'), over(257, 'b');
  auto q = parse_broker_ext_alive(
      R"({"v":1,"ids":["ok",")" + at + R"(",")" + over + R"(",7,"",null]})", kLimits);
  CHECK(q.what == What::AliveBatch);
  CHECK(q.ids == std::vector<std::string>{"ok", at});
  CHECK(q.error != ParseError::None);

  CHECK(parse_broker_ext_alive("nope", kLimits).error == ParseError::BadJson);
  CHECK(parse_broker_ext_alive(R"({"v":1})", kLimits).error == ParseError::BadPayload);
  CHECK(parse_broker_ext_alive(R"({"v":1,"ids":"dev-1"})", kLimits).error == ParseError::BadPayload);
  ParseLimits small;
  small.max_payload_bytes = 16;
  CHECK(parse_broker_ext_alive(R"({"v":1,"ids":["dev-1"]})", small).error ==
        ParseError::PayloadTooLarge);

  // Routed by topic with the node; a retained copy is never live evidence.
  const auto m = default_matcher();
  const std::string body = R"({"v":1,"boot":"b-1","ids":["d1"]})";
  auto live = parse_message(m, "$SYS/presence/n2/alive", body, false, kLimits);
  CHECK(live.what == What::AliveBatch);
  CHECK(live.node == "n2");
  CHECK(live.ids == std::vector<std::string>{"d1"});
  CHECK(parse_message(m, "$SYS/presence/n2/alive", body, true, kLimits).what == What::Ignore);
}

TEST_CASE("uptime: mosquitto's 'N seconds'") {
  auto u = parse_uptime("3600 seconds");
  CHECK(u.what == What::BrokerUptime);
  CHECK(u.uptime_seconds == 3600);
  CHECK(parse_uptime("12").uptime_seconds == 12);
  CHECK(parse_uptime("1 days, 2 hours, 3 minutes, 4 seconds").uptime_seconds ==
        86400 + 7200 + 180 + 4);
  CHECK(parse_uptime("5 minutes").uptime_seconds == 300);
  CHECK(parse_uptime("12 34").error == ParseError::BadPayload);
  CHECK(parse_uptime("seconds").error == ParseError::BadPayload);
  CHECK(parse_uptime("12 fortnights").error == ParseError::BadPayload);
  CHECK(parse_uptime("-3 seconds").error == ParseError::BadPayload);
  CHECK(parse_uptime("").error == ParseError::BadPayload);
}

TEST_CASE("parse_message: routing, unknown topics, id limits") {
  const auto m = default_matcher();
  auto s = parse_message(m, "devices/d1/status", "online", false, kLimits);
  CHECK(s.what == What::DeviceEvent);
  CHECK(s.id == "d1");
  CHECK(s.topic_kind == TopicKind::Status);

  auto hb = parse_message(m, "devices/d1/heartbeat", "x", false, kLimits);
  CHECK(hb.kind == EventKind::Heartbeat);

  auto ex = parse_message(m, "$SYS/presence/node-a/clients/d9/connected",
                          R"({"v":1,"boot":"b","session":3})", false, kLimits);
  CHECK(ex.id == "d9");
  CHECK(ex.node == "node-a");
  CHECK(ex.session == 3);

  // broker-ext encodes ids in the topic level; the JSON clientid is authoritative.
  auto enc = parse_message(m, "$SYS/presence/n/clients/a%2Fb/connected",
                           R"({"v":1,"boot":"b","session":4,"clientid":"a/b"})", false, kLimits);
  CHECK(enc.id == "a/b");
  auto hashed = parse_message(m, "$SYS/presence/n/clients/%H0123456789ABCDEF/disconnected",
                              R"({"v":1,"boot":"b","session":4,"clientid":")" +
                                  std::string(kLimits.max_id_bytes + 1, 'z') + "\"}",
                              false, kLimits);
  CHECK(hashed.what == What::Reject);
  CHECK(hashed.error == ParseError::IdTooLong);
  auto emqx_id = parse_message(m, "$SYS/brokers/emqx@h/clients/x/connected",
                               R"({"clientid":"x","connected_at":1})", false, kLimits);
  CHECK(emqx_id.id == "x");
  CHECK(emqx_id.source == Source::Emqx);

  auto up = parse_message(m, "$SYS/broker/uptime", "10 seconds", false, kLimits);
  CHECK(up.what == What::BrokerUptime);
  CHECK(up.node.empty());

  auto unknown = parse_message(m, "devices/d1/telemetry", "{}", false, kLimits);
  CHECK(unknown.what == What::Reject);
  CHECK(unknown.error == ParseError::UnknownTopic);

  auto empty = parse_message(m, "devices//status", "online", false, kLimits);
  CHECK(empty.error == ParseError::EmptyId);

  const std::string at_limit(kLimits.max_id_bytes, 'a');
  const std::string over(kLimits.max_id_bytes + 1, 'a');
  CHECK(parse_message(m, "devices/" + at_limit + "/status", "online", false, kLimits).what ==
        What::DeviceEvent);
  auto too_long = parse_message(m, "devices/" + over + "/status", "online", false, kLimits);
  CHECK(too_long.what == What::Reject);
  CHECK(too_long.error == ParseError::IdTooLong);
}

TEST_CASE("parse_message: a retained replay is resync info, never proof of life (mosquitto #1165)") {
  const auto m = default_matcher();
  auto s = parse_message(m, "devices/d1/status", R"({"state":"online","site":"x"})", true, kLimits);
  CHECK(s.what == What::DeviceResync);
  CHECK(s.id == "d1");
  CHECK(label(s, "site") == "x");
  CHECK(parse_message(m, "devices/d1/status", "offline", true, kLimits).what == What::DeviceResync);
  CHECK(parse_message(m, "devices/d1/heartbeat", "1", true, kLimits).what == What::DeviceResync);
  // Live traffic (RETAIN flag clear) is evidence.
  CHECK(parse_message(m, "devices/d1/status", "online", false, kLimits).what == What::DeviceEvent);
  // Bad retained payloads are still rejected.
  CHECK(parse_message(m, "devices/d1/status", "{", true, kLimits).what == What::Reject);
}

TEST_CASE("BrokerWatch: changed boot id or falling uptime means restart, per node") {
  BrokerWatch w;
  CHECK_FALSE(w.on_boot("a", "boot-1"));  // first sight
  CHECK_FALSE(w.on_boot("a", "boot-1"));
  CHECK(w.on_boot("a", "boot-2"));
  CHECK_FALSE(w.on_boot("a", "boot-2"));
  CHECK_FALSE(w.on_boot("b", "boot-9"));  // another node is independent

  CHECK_FALSE(w.on_uptime("", 100));
  CHECK_FALSE(w.on_uptime("", 100));  // equal: not a restart
  CHECK_FALSE(w.on_uptime("", 101));
  CHECK(w.on_uptime("", 3));
  CHECK_FALSE(w.on_uptime("", 4));
  CHECK_FALSE(w.on_uptime("other", 1));
}

TEST_CASE("broker-ext client list (issue 14): each listed id with its session; bad entries cost only themselves") {
  const ParseLimits limits;
  auto p = parse_broker_ext_clients(
      R"({"v":1,"boot":"b1","node":"n1","part":1,"parts":1,"clients":[{"clientid":"a","session":7},{"clientid":""},{"x":1},{"clientid":"b","session":9}]})",
      limits);
  CHECK(p.what == Parsed::What::ClientList);
  CHECK(p.ids == std::vector<std::string>{"a", "b"});
  CHECK(p.sessions == std::vector<std::uint64_t>{7, 9});
  CHECK(p.boot == "b1");
  CHECK(p.error == ParseError::BadPayload);
  CHECK(parse_broker_ext_clients(R"({"clients":{}})", limits).what == Parsed::What::Reject);
  CHECK(parse_broker_ext_clients("nope", limits).error == ParseError::BadJson);
  // Routed by topic; a retained copy (never published so) is stale and ignored.
  std::vector<TopicPattern> ps;
  ps.push_back(*TopicPattern::compile(TopicKind::BrokerExtClients, "$SYS/presence/{node}/clients", nullptr));
  const TopicMatcher m(std::move(ps));
  const std::string body = R"({"clients":[{"clientid":"a","session":1}]})";
  auto live = parse_message(m, "$SYS/presence/n1/clients", body, false, limits);
  CHECK(live.what == Parsed::What::ClientList);
  CHECK(live.node == "n1");
  CHECK(parse_message(m, "$SYS/presence/n1/clients", body, true, limits).what == Parsed::What::Ignore);
}
