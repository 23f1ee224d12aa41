#include "broker-ext/presence_ext.h"

#include <doctest/doctest.h>

#include <set>
#include <nlohmann/json.hpp>

using namespace presence::broker_ext;
using nlohmann::json;

namespace {

Options opts(std::vector<std::pair<std::string, std::string>> extra = {}) {
  extra.emplace_back("basic_auth", "defer");
  extra.emplace_back("node", "n1");
  auto r = parse_options(extra, "host");
  REQUIRE(r.options);
  return *r.options;
}

Now at(std::int64_t ms) { return Now{ms, 1'700'000'000'000 + ms}; }

ClientInfo client(const std::string& id, std::optional<std::string> user = std::nullopt) {
  ClientInfo c;
  c.client_id = id;
  c.username = std::move(user);
  c.address = "127.0.0.1";
  c.protocol_version = 4;
  c.keepalive = 30;
  return c;
}

// Handles stand in for struct mosquitto*; never dereferenced.
const void* conn(int n) { return reinterpret_cast<const void*>(static_cast<std::uintptr_t>(0x1000 + n)); }

struct Ev {
  std::string topic;
  json body;
};

std::vector<Ev> events(const Output& out, const std::string& kind = "") {
  std::vector<Ev> v;
  for (const auto& m : out.messages) {
    if (!kind.empty() && m.topic.size() >= kind.size() &&
        m.topic.compare(m.topic.size() - kind.size(), kind.size(), kind) != 0) {
      continue;
    }
    v.push_back(Ev{m.topic, json::parse(m.payload)});
  }
  return v;
}

std::vector<Ev> client_events(const Output& out) {
  std::vector<Ev> v;
  for (auto& e : events(out)) {
    if (e.topic.find("/clients/") != std::string::npos) v.push_back(e);
  }
  return v;
}

}  // namespace

TEST_CASE("boot is retained, seq 1, carries the boot id") {
  PresenceExt p(opts(), "abcd", "0.1.0", "2.0", at(0));
  const Message m = p.boot_message();
  CHECK(m.retain);
  CHECK(m.topic == "$SYS/presence/n1/boot");
  auto j = json::parse(m.payload);
  CHECK(j["v"] == 1);
  CHECK(j["boot"] == "abcd");
  CHECK(j["seq"] == 1);
  CHECK(j["node"] == "n1");
  CHECK(j["ts"] == 1'700'000'000'000);
}

TEST_CASE("accepted connect: pending at auth, connected at the next tick, then disconnected") {
  PresenceExt p(opts(), "b", "0", "2.0", at(0));
  p.boot_message();
  Output out;
  CHECK(p.on_basic_auth(conn(1), client("dev/1", "u"), at(10), out) == AuthVerdict::defer);
  CHECK(out.messages.empty());  // the broker has not decided yet
  CHECK(p.pending() == 1);
  p.on_tick(at(20), out);
  auto ev = client_events(out);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].topic == "$SYS/presence/n1/clients/dev%2F1/connected");
  CHECK(ev[0].body["clientid"] == "dev/1");
  CHECK(ev[0].body["username"] == "u");
  CHECK(ev[0].body["address"] == "127.0.0.1");
  CHECK(ev[0].body["keepalive"] == 30);
  CHECK(ev[0].body["ts"] == 1'700'000'000'010);  // time of the connect, not of the tick
  const auto session = ev[0].body["session"].get<std::uint64_t>();
  CHECK(ev[0].body["seq"] == session);
  CHECK(p.clients() == 1);

  Output out2;
  p.on_disconnect(conn(1), "dev/1", at(500), out2);
  auto d = client_events(out2);
  REQUIRE(d.size() == 1);
  CHECK(d[0].topic == "$SYS/presence/n1/clients/dev%2F1/disconnected");
  CHECK(d[0].body["session"] == session);
  CHECK(d[0].body["superseded"] == false);
  CHECK(d[0].body["seq"].get<std::uint64_t>() > session);
  CHECK(p.clients() == 0);
}

TEST_CASE("refused by the broker's auth chain: disconnect with NULL id, no events at all") {
  PresenceExt p(opts(), "b", "0", "2.0", at(0));
  Output out;
  p.on_basic_auth(conn(1), client("dev1", "baduser"), at(10), out);
  p.on_disconnect(conn(1), nullptr, at(10), out);
  p.on_tick(at(20), out);
  CHECK(client_events(out).empty());
  CHECK(p.counters().auth_refused == 1);
  CHECK(p.clients() == 0);
}

TEST_CASE("a refused attempt does not disturb the live session of the same client id") {
  PresenceExt p(opts(), "b", "0", "2.0", at(0));
  Output out;
  p.on_basic_auth(conn(1), client("dev1"), at(10), out);
  p.on_tick(at(20), out);
  p.on_basic_auth(conn(2), client("dev1", "wrong"), at(30), out);
  p.on_disconnect(conn(2), nullptr, at(30), out);
  p.on_tick(at(40), out);
  Output later;
  p.on_disconnect(conn(1), "dev1", at(50), later);
  auto d = client_events(later);
  REQUIRE(d.size() == 1);
  CHECK(d[0].body["superseded"] == false);
}

TEST_CASE("takeover: new connection confirmed first, old one's disconnect is superseded") {
  PresenceExt p(opts(), "b", "0", "2.0", at(0));
  Output out;
  p.on_basic_auth(conn(1), client("dev1"), at(10), out);
  p.on_tick(at(20), out);
  const auto s1 = client_events(out)[0].body["session"].get<std::uint64_t>();

  // Mosquitto: new CONNECT authenticates, then connect__on_authorised disconnects the old one
  // before the next tick.
  Output t;
  p.on_basic_auth(conn(2), client("dev1"), at(30), t);
  p.on_disconnect(conn(1), "dev1", at(30), t);
  p.on_tick(at(40), t);
  auto ev = client_events(t);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].topic.find("/connected") != std::string::npos);
  const auto s2 = ev[0].body["session"].get<std::uint64_t>();
  CHECK(s2 > s1);
  CHECK(ev[1].topic.find("/disconnected") != std::string::npos);
  CHECK(ev[1].body["session"] == s1);
  CHECK(ev[1].body["superseded"] == true);
  CHECK(ev[1].body["seq"].get<std::uint64_t>() > s2);
  CHECK(p.clients() == 1);

  // The new session's own disconnect is not superseded.
  Output e;
  p.on_disconnect(conn(2), "dev1", at(50), e);
  REQUIRE(client_events(e).size() == 1);
  CHECK(client_events(e)[0].body["session"] == s2);
  CHECK(client_events(e)[0].body["superseded"] == false);
  CHECK(p.clients() == 0);
}

TEST_CASE("accepted and gone in the same loop iteration: connected then disconnected") {
  PresenceExt p(opts(), "b", "0", "2.0", at(0));
  Output out;
  p.on_basic_auth(conn(1), client("dev1"), at(10), out);
  p.on_disconnect(conn(1), "dev1", at(11), out);
  p.on_tick(at(20), out);
  auto ev = client_events(out);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].topic.find("/connected") != std::string::npos);
  CHECK(ev[1].body["session"] == ev[0].body["session"]);
  CHECK(ev[1].body["superseded"] == false);
}

TEST_CASE("two connects of one id in one iteration: both confirmed in order, first superseded") {
  PresenceExt p(opts(), "b", "0", "2.0", at(0));
  Output out;
  p.on_basic_auth(conn(1), client("dev1"), at(10), out);
  p.on_basic_auth(conn(2), client("dev1"), at(10), out);
  p.on_disconnect(conn(1), "dev1", at(10), out);  // takeover by conn 2
  p.on_tick(at(20), out);
  auto ev = client_events(out);
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].topic.find("/connected") != std::string::npos);
  CHECK(ev[1].topic.find("/connected") != std::string::npos);
  CHECK(ev[2].body["session"] == ev[0].body["session"]);
  CHECK(ev[2].body["superseded"] == true);
  CHECK(p.clients() == 1);
}

TEST_CASE("re-auth of a live connection (SIGHUP reload) is not a new connect") {
  PresenceExt p(opts({{"connect_rate", "1"}}), "b", "0", "2.0", at(0));
  Output out;
  p.on_basic_auth(conn(1), client("dev1"), at(10), out);
  p.on_tick(at(20), out);
  CHECK(p.on_basic_auth(conn(1), client("dev1"), at(30), out) == AuthVerdict::defer);
  p.on_tick(at(40), out);
  CHECK(client_events(out).size() == 1);
  CHECK(p.counters().refused_rate_limited == 0);  // not charged to the bucket either
}

TEST_CASE("disconnect of a connection we never saw: session 0; stale if a known session owns it") {
  PresenceExt p(opts(), "b", "0", "2.0", at(0));
  Output out;
  p.on_disconnect(conn(9), "ext", at(10), out);
  auto ev = client_events(out);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].body["session"] == 0);
  CHECK(ev[0].body["superseded"] == false);

  Output o2;
  p.on_basic_auth(conn(1), client("ext"), at(20), o2);
  p.on_disconnect(conn(9), "ext", at(20), o2);  // an unseen old connection taken over
  auto ev2 = client_events(o2);
  REQUIRE(ev2.size() == 2);
  CHECK(ev2[1].body["session"] == 0);
  CHECK(ev2[1].body["superseded"] == true);
}

TEST_CASE("half-open sockets: NULL id and unknown connection are counted, not published") {
  PresenceExt p(opts(), "b", "0", "2.0", at(0));
  Output out;
  p.on_disconnect(conn(5), nullptr, at(10), out);
  CHECK(out.messages.empty());
  CHECK(p.counters().unidentified_disconnects == 1);
}

TEST_CASE("heartbeat every interval on the steady clock: T-1, T, T+1; seq strictly increasing") {
  PresenceExt p(opts({{"heartbeat_interval", "1s"}}), "b", "0", "2.0", at(0));
  p.boot_message();
  Output o;
  p.on_tick(at(0), o);
  REQUIRE(events(o, "/heartbeat").size() == 1);
  Output a;
  p.on_tick(at(999), a);
  CHECK(events(a, "/heartbeat").empty());
  Output b;
  p.on_tick(at(1000), b);
  REQUIRE(events(b, "/heartbeat").size() == 1);
  Output c;
  p.on_tick(at(1001), c);
  CHECK(events(c, "/heartbeat").empty());
  auto hb0 = events(o, "/heartbeat")[0].body;
  auto hb1 = events(b, "/heartbeat")[0].body;
  CHECK(hb0["seq"] == 2);
  CHECK(hb1["seq"] == 3);
  CHECK(hb1["uptime_ms"] == 1000);
  CHECK(hb1["clients"] == 0);
  // A stalled loop (5.5 s) gives one heartbeat, and the cadence restarts from then.
  Output s;
  p.on_tick(at(6500), s);
  CHECK(events(s, "/heartbeat").size() == 1);
  Output s2;
  p.on_tick(at(7499), s2);
  CHECK(events(s2, "/heartbeat").empty());
  p.on_tick(at(7500), s2);
  CHECK(events(s2, "/heartbeat").size() == 1);
}

TEST_CASE("token bucket refuses at the door, counts, and logs rate-limited") {
  PresenceExt p(opts({{"connect_rate", "2"}, {"connect_burst", "2"}, {"refusal_log_interval", "10s"}}),
                "b", "0", "2.0", at(0));
  Output out;
  CHECK(p.on_basic_auth(conn(1), client("a"), at(0), out) == AuthVerdict::defer);
  CHECK(p.on_basic_auth(conn(2), client("b"), at(0), out) == AuthVerdict::defer);
  CHECK(p.on_basic_auth(conn(3), client("c"), at(0), out) == AuthVerdict::refuse);
  CHECK(out.logs.size() == 1);  // first refusal is logged at once
  CHECK(p.on_basic_auth(conn(4), client("d"), at(100), out) == AuthVerdict::refuse);
  CHECK(out.logs.size() == 1);  // then at most one line per refusal_log_interval
  p.on_disconnect(conn(3), nullptr, at(0), out);
  p.on_disconnect(conn(4), nullptr, at(100), out);
  CHECK(p.on_basic_auth(conn(5), client("e"), at(499), out) == AuthVerdict::refuse);  // T-1
  CHECK(p.on_basic_auth(conn(6), client("f"), at(500), out) == AuthVerdict::defer);   // T
  CHECK(p.counters().refused_rate_limited == 3);
  Output t;
  p.on_tick(at(9999), t);
  CHECK(t.logs.empty());
  p.on_tick(at(10000), t);
  REQUIRE(t.logs.size() == 1);
  CHECK(t.logs[0].text.find("refused 2 connect attempt(s)") != std::string::npos);
  CHECK(t.logs[0].text.find("rate_limited=2") != std::string::npos);
  auto hb = events(t, "/heartbeat");
  REQUIRE_FALSE(hb.empty());
  CHECK(hb.back().body["refused_rate_limited"] == 3);
  // Refused attempts never produced client events.
  for (auto& e : client_events(t)) CHECK(e.body["clientid"] != "c");
}

TEST_CASE("flap ban refuses a flapping client for flap_ban, then admits it again") {
  PresenceExt p(opts({{"flap_max_count", "2"}, {"flap_window", "1s"}, {"flap_ban", "3s"}}), "b",
                "0", "2.0", at(0));
  Output out;
  int n = 0;
  auto attempt = [&](std::int64_t t) {
    ++n;
    auto v = p.on_basic_auth(conn(n), client("flappy"), at(t), out);
    if (v == AuthVerdict::refuse) {
      p.on_disconnect(conn(n), nullptr, at(t), out);
    } else {
      p.on_tick(at(t), out);
      p.on_disconnect(conn(n), "flappy", at(t), out);
    }
    return v;
  };
  CHECK(attempt(0) == AuthVerdict::defer);
  CHECK(attempt(100) == AuthVerdict::defer);
  CHECK(attempt(200) == AuthVerdict::refuse);  // 3rd inside 1 s: banned until 3200
  CHECK(attempt(3199) == AuthVerdict::refuse);
  CHECK(attempt(3200) == AuthVerdict::defer);
  CHECK(p.counters().refused_flap_banned == 2);
  // Other clients are not affected.
  CHECK(p.on_basic_auth(conn(100), client("calm"), at(250), out) == AuthVerdict::defer);
}

TEST_CASE("a pending connection that lost its client id (refused, close deferred) stays pending") {
  PresenceExt p(opts(), "b", "0", "2.0", at(0));
  Output out;
  p.on_basic_auth(conn(1), client("ws-dev"), at(10), out);
  p.on_basic_auth(conn(2), client("ok-dev"), at(10), out);
  static const void* refused = nullptr;
  refused = conn(1);
  p.on_tick(at(20), out, [](const void* c) { return c != refused; });
  auto ev = client_events(out);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].body["clientid"] == "ok-dev");
  CHECK(p.pending() == 1);
  p.on_disconnect(conn(1), nullptr, at(30), out);  // the deferred close arrives
  p.on_tick(at(40), out, [](const void*) { return true; });
  CHECK(client_events(out).size() == 1);
  CHECK(p.pending() == 0);
  CHECK(p.counters().auth_refused == 1);
}

// ---- issue 14: the connected-client list on request ---------------------------------------

TEST_CASE("clients request: confirmed sessions only, in parts of kClientsPerPart") {
  PresenceExt ext(opts(), "boot-1", "1.0", "2.0.11", at(0));
  Output out;
  const std::size_t n = kClientsPerPart + 5;
  for (std::size_t i = 0; i < n; ++i)
    ext.on_basic_auth(conn(static_cast<int>(i)), client("c-" + std::to_string(i)), at(1), out);
  ext.on_basic_auth(conn(99999), client("pending"), at(2), out);
  // Confirm all but the last (pending) one: the tick confirms everything still identified.
  ext.on_tick(at(3), out, [](const void* c) { return c != conn(99999); });
  out.messages.clear();
  ext.on_clients_request(at(4), out);
  const auto parts = events(out, "/clients");
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].topic == "$SYS/presence/n1/clients");
  std::set<std::string> ids;
  for (const auto& p : parts) {
    CHECK(p.body["v"] == 1);
    CHECK(p.body["boot"] == "boot-1");
    CHECK(p.body["node"] == "n1");
    CHECK(p.body["parts"] == 2);
    for (const auto& c : p.body["clients"]) {
      ids.insert(c["clientid"].get<std::string>());
      CHECK(c["session"].get<std::uint64_t>() > 0);
    }
  }
  CHECK(parts[0].body["part"] == 1);
  CHECK(parts[0].body["clients"].size() == kClientsPerPart);
  CHECK(ids.size() == n);
  CHECK(ids.count("pending") == 0);
  CHECK(ids.count("c-0") == 1);
  // A client that left is no longer listed; an empty broker answers one empty part.
  ext.on_disconnect(conn(0), "c-0", at(5), out);
  out.messages.clear();
  ext.on_clients_request(at(6), out);
  ids.clear();
  for (const auto& p : events(out, "/clients"))
    for (const auto& c : p.body["clients"]) ids.insert(c["clientid"].get<std::string>());
  CHECK(ids.count("c-0") == 0);
  PresenceExt empty(opts(), "boot-2", "1.0", "2.0.11", at(0));
  Output o2;
  empty.on_clients_request(at(1), o2);
  REQUIRE(o2.messages.size() == 1);
  CHECK(json::parse(o2.messages[0].payload)["clients"].empty());
  CHECK_FALSE(o2.messages[0].retain);
}
