// Heartbeat aggregation (broker-ext/alive.*, PresenceExt::on_message): pattern, matching,
// dedupe, size-bounded split, seq, the alive interval at T-1/T/T+1, escaping.
#include "broker-ext/alive.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <set>

#include "broker-ext/presence_ext.h"

using namespace presence::broker_ext;
using nlohmann::json;
using Match = HeartbeatPattern::Match;

namespace {

HeartbeatPattern pattern(const std::string& s) {
  std::string why;
  auto p = HeartbeatPattern::parse(s, &why);
  REQUIRE_MESSAGE(p, why);
  return *p;
}

std::string parse_error(const std::string& s) {
  std::string why;
  auto p = HeartbeatPattern::parse(s, &why);
  CHECK_FALSE(p);
  return why;
}

Match match(const HeartbeatPattern& p, const std::string& topic, std::string* id = nullptr) {
  std::string_view v;
  const Match m = p.match(topic, &v);
  if (id) *id = std::string(v);
  return m;
}

std::vector<std::string> ids(const std::string& payload) {
  return json::parse(payload)["ids"].get<std::vector<std::string>>();
}

Options agg_opts(std::vector<std::pair<std::string, std::string>> extra = {}) {
  extra.emplace_back("basic_auth", "defer");
  extra.emplace_back("node", "n1");
  extra.emplace_back("heartbeat_topic", "devices/{id}/heartbeat");
  auto r = parse_options(extra, "host");
  REQUIRE(r.options);
  return *r.options;
}

Now at(std::int64_t ms) { return Now{ms, 1'700'000'000'000 + ms}; }

std::vector<Message> alive_of(const Output& out) {
  std::vector<Message> v;
  for (const auto& m : out.messages) {
    if (m.topic.size() >= 6 && m.topic.compare(m.topic.size() - 6, 6, "/alive") == 0) v.push_back(m);
  }
  return v;
}

json heartbeat_of(const Output& out) {
  json last;
  for (const auto& m : out.messages) {
    if (m.topic.size() >= 10 && m.topic.compare(m.topic.size() - 10, 10, "/heartbeat") == 0) {
      last = json::parse(m.payload);
    }
  }
  return last;
}

}  // namespace

TEST_CASE("heartbeat_topic: one whole {id} level, no wildcards, no other placeholder") {
  pattern("devices/{id}/heartbeat");
  pattern("{id}");
  pattern("devices/{id}");
  pattern("{id}/hb");
  CHECK(parse_error("devices/heartbeat").find("needs one {id}") != std::string::npos);
  CHECK(parse_error("devices/x{id}/heartbeat").find("whole topic level") != std::string::npos);
  CHECK(parse_error("devices/{id}x/heartbeat").find("whole topic level") != std::string::npos);
  CHECK(parse_error("devices/{ID}/heartbeat").find("whole topic level") != std::string::npos);
  CHECK(parse_error("{node}/{id}/heartbeat").find("only placeholder") != std::string::npos);
  CHECK(parse_error("devices/+/{id}").find("'+'") != std::string::npos);
  CHECK(parse_error("devices/{id}/#").find("'#'") != std::string::npos);
  CHECK(parse_error("devices/{id}/hb+").find("'+'") != std::string::npos);
  CHECK(parse_error("a/{id}/{id}").find("more than one") != std::string::npos);
  CHECK(parse_error(std::string("a/\0/{id}", 8)).find("'+'") != std::string::npos);
  CHECK(parse_error("") == "must not be empty");
}

TEST_CASE("matching: literal levels exact, same level count, {id} non-empty and <= 256 bytes") {
  const auto p = pattern("devices/{id}/heartbeat");
  std::string id;
  CHECK(match(p, "devices/dev-1/heartbeat", &id) == Match::id);
  CHECK(id == "dev-1");
  CHECK(match(p, "devices/dev-1/heartbeat/x") == Match::no);
  CHECK(match(p, "devices/heartbeat") == Match::no);
  CHECK(match(p, "devices/a/b/heartbeat") == Match::no);
  CHECK(match(p, "xdevices/a/heartbeat") == Match::no);
  CHECK(match(p, "devices/a/heartbeats") == Match::no);
  CHECK(match(p, "Devices/a/heartbeat") == Match::no);
  CHECK(match(p, "devices/a/status") == Match::no);
  CHECK(match(p, "devices//heartbeat") == Match::bad_id);  // empty id
  CHECK(match(p, "devices/heartbeat/heartbeat", &id) == Match::id);
  CHECK(id == "heartbeat");

  // id length at T-1, T, T+1 with T = 256 bytes.
  CHECK(match(p, "devices/" + std::string(255, 'a') + "/heartbeat") == Match::id);
  CHECK(match(p, "devices/" + std::string(256, 'a') + "/heartbeat", &id) == Match::id);
  CHECK(id.size() == 256);
  CHECK(match(p, "devices/" + std::string(257, 'a') + "/heartbeat") == Match::bad_id);
  CHECK(match(p, "devices/" + std::string(257, 'a') + "/x/heartbeat") == Match::no);

  const auto whole = pattern("{id}");
  CHECK(match(whole, "abc", &id) == Match::id);
  CHECK(id == "abc");
  CHECK(match(whole, "a/b") == Match::no);
  CHECK(match(whole, "") == Match::bad_id);
  const auto first = pattern("{id}/hb");
  CHECK(match(first, "x/hb", &id) == Match::id);
  CHECK(match(first, "/hb") == Match::bad_id);
  CHECK(match(first, "hb") == Match::no);
}

TEST_CASE("aggregator: dedupe within an interval, again in the next, nothing when idle") {
  AliveAggregator a("p/alive", "n1", "b00t", 32768);
  std::vector<std::string> out;
  a.add("dev-1", out);
  a.add("dev-2", out);
  a.add("dev-1", out);
  a.add("dev-1", out);
  CHECK(out.empty());
  CHECK(a.pending() == 2);
  a.flush(out);
  REQUIRE(out.size() == 1);
  const json j = json::parse(out[0]);
  CHECK(out[0] == R"({"v":1,"node":"n1","boot":"b00t","seq":1,"ids":["dev-1","dev-2"]})");
  CHECK(j["seq"] == 1);

  out.clear();
  a.flush(out);  // an interval without heartbeats publishes nothing
  CHECK(out.empty());
  CHECK(a.last_seq() == 1);

  a.add("dev-2", out);  // seen before: listed again in a new interval
  a.add("dev-3", out);
  a.flush(out);
  REQUIRE(out.size() == 1);
  CHECK(json::parse(out[0])["seq"] == 2);
  CHECK(ids(out[0]) == std::vector<std::string>{"dev-2", "dev-3"});
}

TEST_CASE("aggregator: a payload never exceeds alive_max_bytes; split at T-1 / T / T+1") {
  const std::size_t max = 1024;
  // Length of the payload without ids: probe with a one-byte id (3 bytes as a JSON string).
  std::size_t head = 0;
  {
    AliveAggregator probe("t", "n1", "b00t", max);
    std::vector<std::string> out;
    probe.add("x", out);
    probe.flush(out);
    REQUIRE(out.size() == 1);
    head = out[0].size() - 3;
  }
  const std::string first(100, 'a');  // 102 bytes as JSON
  for (const std::size_t target : {max - 1, max, max + 1}) {
    CAPTURE(target);
    // head + 102 + ',' + (n + 2) == target
    const std::size_t n = target - head - 102 - 1 - 2;
    AliveAggregator a("t", "n1", "b00t", max);
    std::vector<std::string> out;
    a.add(first, out);
    a.add(std::string(n, 'b'), out);
    if (target <= max) {
      CHECK(out.empty());
      a.flush(out);
      REQUIRE(out.size() == 1);
      CHECK(out[0].size() == target);
      CHECK(ids(out[0]).size() == 2);
    } else {
      // The second id would overflow: the first goes out alone at once, the second waits.
      REQUIRE(out.size() == 1);
      CHECK(ids(out[0]) == std::vector<std::string>{first});
      CHECK(json::parse(out[0])["seq"] == 1);
      CHECK(a.pending() == 1);
      a.flush(out);
      REQUIRE(out.size() == 2);
      CHECK(ids(out[1]) == std::vector<std::string>{std::string(n, 'b')});
      CHECK(json::parse(out[1])["seq"] == 2);
    }
    for (const auto& p : out) CHECK(p.size() <= max);
  }
}

TEST_CASE("aggregator: 2000 ids split into messages <= max, each id exactly once, seq 1..n") {
  AliveAggregator a("t", "node-1", "0123456789abcdef0123456789abcdef", 1024);
  std::vector<std::string> out;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 2000; ++i) a.add("device-" + std::to_string(i), out);
  }
  a.flush(out);
  REQUIRE(out.size() > 1);
  std::multiset<std::string> all;
  std::uint64_t seq = 0;
  for (const auto& p : out) {
    CHECK(p.size() <= 1024);
    const json j = json::parse(p);
    CHECK(j["seq"] == ++seq);
    for (const auto& id : j["ids"]) all.insert(id.get<std::string>());
  }
  CHECK(all.size() == 2000);
  CHECK(std::set<std::string>(all.begin(), all.end()).size() == 2000);
  // The split is tight: each message but the last could not take the next id.
  CHECK(out.front().size() > 1024 - 14);
}

TEST_CASE("aggregator: a weird id is escaped (invalid UTF-8 safe); an id too large alone is dropped") {
  AliveAggregator a("t", "n1", "b", 32768);
  std::vector<std::string> out;
  const std::string weird = "a\"b\\c\x01/\xc3\xa9\xff";
  a.add(weird, out);
  a.flush(out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].find(R"("a\"b\\c\u0001/)") != std::string::npos);
  CHECK(out[0].find("\\uFFFD") != std::string::npos);
  CHECK(ids(out[0]) == std::vector<std::string>{"a\"b\\c\x01/\xc3\xa9\xef\xbf\xbd"});

  // 256 control bytes are 1538 bytes as JSON: with alive_max_bytes 1024 it can never be sent.
  AliveAggregator small("t", "n1", "b", 1024);
  out.clear();
  small.add(std::string(256, '\x01'), out);
  small.add("ok", out);
  small.add(std::string(256, '\x01'), out);  // same interval: not counted twice
  small.flush(out);
  REQUIRE(out.size() == 1);
  CHECK(ids(out[0]) == std::vector<std::string>{"ok"});
  CHECK(small.ids_dropped() == 1);
}

TEST_CASE("options: heartbeat_topic, alive_interval, alive_max_bytes validated, off by default") {
  auto base = [](std::vector<std::pair<std::string, std::string>> kv) {
    kv.emplace_back("basic_auth", "off");
    return parse_options(kv, "h");
  };
  auto r = base({});
  REQUIRE(r.options);
  CHECK_FALSE(r.options->aggregation());
  CHECK(r.options->alive_interval_ms == 1000);
  CHECK(r.options->alive_max_bytes == 32768);

  r = base({{"heartbeat_topic", "devices/{id}/hb"}, {"alive_interval", "250"},
            {"alive_max_bytes", "4096"}});
  REQUIRE(r.options);
  CHECK(r.options->aggregation());
  CHECK(r.options->heartbeat_topic == "devices/{id}/hb");
  CHECK(r.options->alive_interval_ms == 250);
  CHECK(r.options->alive_max_bytes == 4096);

  r = base({{"heartbeat_topic", "devices/+/hb"}});
  REQUIRE_FALSE(r.options);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].rfind("plugin_opt_heartbeat_topic: 'devices/+/hb'", 0) == 0);
  CHECK_FALSE(base({{"heartbeat_topic", "devices/x{id}/hb"}}).options);
  CHECK_FALSE(base({{"heartbeat_topic", "devices/hb"}}).options);

  CHECK_FALSE(base({{"alive_interval", "99"}}).options);
  CHECK(base({{"alive_interval", "100"}}).options->alive_interval_ms == 100);
  CHECK(base({{"alive_interval", "60000"}}).options->alive_interval_ms == 60000);
  CHECK_FALSE(base({{"alive_interval", "60001"}}).options);
  CHECK(base({{"alive_interval", "2s"}}).options->alive_interval_ms == 2000);
  CHECK_FALSE(base({{"alive_interval", "fast"}}).options);
  CHECK_FALSE(base({{"alive_max_bytes", "1023"}}).options);
  CHECK(base({{"alive_max_bytes", "1024"}}).options->alive_max_bytes == 1024);
  CHECK(base({{"alive_max_bytes", "60000"}}).options->alive_max_bytes == 60000);
  CHECK_FALSE(base({{"alive_max_bytes", "60001"}}).options);
}

TEST_CASE("PresenceExt: alive at the interval (T-1 / T / T+1), QoS 0, counters in the heartbeat") {
  PresenceExt p(agg_opts(), "b00t", "0", "2.0", at(0));
  p.boot_message();
  Output o0;
  p.on_tick(at(0), o0);  // first heartbeat; nothing pending
  CHECK(alive_of(o0).empty());

  Output o;
  p.on_message("devices/dev-1/heartbeat", o);
  p.on_message("devices/dev-2/heartbeat", o);
  p.on_message("devices/dev-1/heartbeat", o);
  p.on_message("devices/dev-3/status", o);      // other topic: not listed
  p.on_message("devices//heartbeat", o);        // empty id: rejected
  p.on_message("devices/a/b/heartbeat", o);     // wrong level count
  CHECK(o.messages.empty());

  p.on_tick(at(999), o);  // T-1
  CHECK(alive_of(o).empty());
  p.on_tick(at(1000), o);  // T
  auto a = alive_of(o);
  REQUIRE(a.size() == 1);
  CHECK(a[0].topic == "$SYS/presence/n1/alive");
  CHECK(a[0].qos == 0);
  CHECK_FALSE(a[0].retain);
  CHECK(a[0].payload == R"({"v":1,"node":"n1","boot":"b00t","seq":1,"ids":["dev-1","dev-2"]})");
  const json hb = heartbeat_of(o);
  REQUIRE_FALSE(hb.is_null());
  CHECK(hb["heartbeats_seen"] == 3);
  CHECK(hb["heartbeats_rejected"] == 1);
  CHECK(hb["alive_messages"] == 1);
  CHECK(hb["alive_ids_dropped"] == 0);
  CHECK(hb.contains("publish_errors"));  // existing fields kept
  CHECK(hb.contains("clients"));

  Output o2;
  p.on_message("devices/dev-1/heartbeat", o2);
  p.on_tick(at(1001), o2);  // T+1: the next interval ends at 2000
  p.on_tick(at(1999), o2);
  CHECK(alive_of(o2).empty());
  p.on_tick(at(2000), o2);
  a = alive_of(o2);
  REQUIRE(a.size() == 1);
  CHECK(json::parse(a[0].payload)["seq"] == 2);  // alive's own counter, per boot
  CHECK(ids(a[0].payload) == std::vector<std::string>{"dev-1"});

  Output o3;
  p.on_tick(at(3000), o3);  // an interval without heartbeats: no alive message
  CHECK(alive_of(o3).empty());
  CHECK(p.counters().alive_messages == 2);
}

TEST_CASE("PresenceExt: full pending set is published at once from on_message") {
  PresenceExt p(agg_opts({{"alive_max_bytes", "1024"}}), "b00t", "0", "2.0", at(0));
  Output o;
  int i = 0;
  while (alive_of(o).empty() && i < 1000) {
    p.on_message("devices/device-" + std::to_string(i++) + "/heartbeat", o);
  }
  auto a = alive_of(o);
  REQUIRE(a.size() == 1);
  CHECK(a[0].payload.size() <= 1024);
  CHECK(ids(a[0].payload).size() == static_cast<std::size_t>(i - 1));  // the last one waits
  Output t;
  p.on_tick(at(1000), t);
  a = alive_of(t);
  REQUIRE(a.size() == 1);
  CHECK(ids(a[0].payload) == std::vector<std::string>{"device-" + std::to_string(i - 1)});
}

TEST_CASE("PresenceExt without heartbeat_topic: no aggregation, boot says so") {
  auto r = parse_options({{"basic_auth", "off"}, {"node", "n1"}}, "h");
  REQUIRE(r.options);
  PresenceExt p(*r.options, "b", "0", "2.0", at(0));
  const json boot = json::parse(p.boot_message().payload);
  CHECK(boot["heartbeat_topic"] == "");
  CHECK_FALSE(boot.contains("alive_interval_ms"));
  Output o;
  p.on_message("devices/dev-1/heartbeat", o);
  p.on_tick(at(0), o);
  p.on_tick(at(1000), o);
  CHECK(alive_of(o).empty());
  CHECK(p.counters().heartbeats_seen == 0);
  CHECK(heartbeat_of(o)["alive_messages"] == 0);

  PresenceExt q(agg_opts({{"alive_interval", "500"}}), "b", "0", "2.0", at(0));
  const json b2 = json::parse(q.boot_message().payload);
  CHECK(b2["heartbeat_topic"] == "devices/{id}/heartbeat");
  CHECK(b2["alive_interval_ms"] == 500);
}
