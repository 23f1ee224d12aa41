// broker-ext events from a real mosquitto 2.0.11: connect, disconnect, keepalive timeout,
// takeover, half-open sockets, restart (issue 4).
#include <doctest/doctest.h>

#include "broker_fixture.h"

using namespace presence::test;
using namespace presence::test::broker_ext;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::vector<std::string> kOpts = {"basic_auth defer", "node itest"};

mqtt::ConnectOptions id(const std::string& client_id, std::uint16_t keepalive = 60) {
  mqtt::ConnectOptions o;
  o.client_id = client_id;
  o.keepalive = keepalive;
  return o;
}

std::vector<json> wait_events(mqtt::Collector& c, const std::string& client_id, std::size_t n,
                              std::chrono::milliseconds timeout = 5000ms) {
  std::vector<json> v;
  wait_for([&] {
    v = client_events(c, client_id);
    return v.size() >= n;
  }, timeout);
  return v;
}

}  // namespace

TEST_CASE("connect and clean disconnect: connected then disconnected, same session, escaped id") {
  Mosquitto broker(plugin_conf(kOpts));
  broker.start();
  mqtt::Collector col(broker.port(), kFilter);
  auto boot = col.wait_for("/boot", "", 5000ms);
  REQUIRE(boot);
  CHECK(boot->retain);
  const json b = body(*boot);
  CHECK(b["v"] == 1);
  CHECK(b["node"] == "itest");
  CHECK(b["boot"].get<std::string>().size() == 32);

  const std::string weird = "dev/1+#\"\\ \xc3\xa9%";
  mqtt::RawClient c;
  REQUIRE(c.connect(broker.port(), id(weird)) == 0);
  c.disconnect();

  auto ev = wait_events(col, weird, 2);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["_kind"] == "connected");
  CHECK(ev[0]["_topic"] == std::string(kPrefix) + "/clients/dev%2F1%2B%23\"\\ \xc3\xa9%25/connected");
  CHECK(ev[0]["clientid"] == weird);
  CHECK(ev[0]["username"].is_null());
  CHECK(ev[0]["address"] == "127.0.0.1");
  CHECK(ev[0]["boot"] == b["boot"]);
  CHECK(ev[0]["session"] == ev[0]["seq"]);
  CHECK(ev[1]["_kind"] == "disconnected");
  CHECK(ev[1]["session"] == ev[0]["session"]);
  CHECK(ev[1]["superseded"] == false);
  CHECK(ev[1]["seq"].get<std::uint64_t>() > ev[0]["seq"].get<std::uint64_t>());

  // An unclean loss (socket closed without DISCONNECT) is reported the same way.
  mqtt::RawClient d;
  REQUIRE(d.connect(broker.port(), id("crashy")) == 0);
  REQUIRE(wait_events(col, "crashy", 1).size() == 1);
  d.close();
  auto ev2 = wait_events(col, "crashy", 2);
  REQUIRE(ev2.size() == 2);
  CHECK(ev2[1]["_kind"] == "disconnected");
  CHECK(ev2[1]["superseded"] == false);
}

TEST_CASE("keepalive timeout (half-open TCP: socket open, peer silent): dropped and reported") {
  Mosquitto broker(plugin_conf(kOpts));
  broker.start();
  mqtt::Collector col(broker.port(), kFilter);
  REQUIRE(col.wait_for("/boot", "", 5000ms));
  mqtt::RawClient c;
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(c.connect(broker.port(), id("sleepy", 1)) == 0);  // keepalive 1 s, then silence
  // Mosquitto 2.0.11 scans keepalives only every ~6 s (keepalive.c: last_check + 5 < now), so
  // a silent client goes after 1.5 x keepalive plus up to ~6 s.
  auto ev = wait_events(col, "sleepy", 2, 10000ms);
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["_kind"] == "connected");
  CHECK(ev[0]["keepalive"] == 1);
  CHECK(ev[1]["_kind"] == "disconnected");
  CHECK(ev[1]["session"] == ev[0]["session"]);
  // Mosquitto allows 1.5 x keepalive before it gives up.
  CHECK(took >= 1400ms);
  CHECK(c.wait_closed(1000ms));
}

TEST_CASE("takeover: new session connected, old connection's disconnect marked superseded") {
  Mosquitto broker(plugin_conf(kOpts));
  broker.start();
  mqtt::Collector col(broker.port(), kFilter);
  REQUIRE(col.wait_for("/boot", "", 5000ms));

  mqtt::RawClient a, b;
  REQUIRE(a.connect(broker.port(), id("twin")) == 0);
  REQUIRE(wait_events(col, "twin", 1).size() == 1);
  REQUIRE(b.connect(broker.port(), id("twin")) == 0);
  auto ev = wait_events(col, "twin", 3);
  REQUIRE(ev.size() == 3);
  const auto s_a = ev[0]["session"].get<std::uint64_t>();
  CHECK(ev[1]["_kind"] == "connected");
  const auto s_b = ev[1]["session"].get<std::uint64_t>();
  CHECK(s_b > s_a);
  CHECK(ev[2]["_kind"] == "disconnected");
  CHECK(ev[2]["session"] == s_a);
  CHECK(ev[2]["superseded"] == true);
  CHECK(a.wait_closed(2000ms));

  // The heartbeat still counts the live session (collector + b).
  REQUIRE(wait_for([&] {
    auto hb = last_heartbeat(col);
    return !hb.is_null() && hb["seq"].get<std::uint64_t>() > ev[2]["seq"].get<std::uint64_t>();
  }, 3000ms));
  CHECK(last_heartbeat(col)["clients"] == 2);

  b.disconnect();
  auto ev2 = wait_events(col, "twin", 4);
  REQUIRE(ev2.size() == 4);
  CHECK(ev2[3]["session"] == s_b);
  CHECK(ev2[3]["superseded"] == false);
}

TEST_CASE("sockets that never complete CONNECT: no client events, only a heartbeat counter") {
  Mosquitto broker(plugin_conf(kOpts));
  broker.start();
  mqtt::Collector col(broker.port(), kFilter);
  REQUIRE(col.wait_for("/boot", "", 5000ms));
  REQUIRE(wait_for([&] { return !last_heartbeat(col).is_null(); }, 3000ms));
  const auto before = last_heartbeat(col)["unidentified_disconnects"].get<std::uint64_t>();

  for (int i = 0; i < 3; ++i) {
    mqtt::RawClient s;
    REQUIRE(s.open(broker.port()));
    REQUIRE(s.send_raw(std::string("\x10", 1)));  // half a fixed header, then gone
    s.close();
  }
  REQUIRE(wait_for([&] {
    return last_heartbeat(col)["unidentified_disconnects"].get<std::uint64_t>() >= before + 3;
  }, 4000ms));
  // (The collector's own connected event was published before its subscription existed.)
  CHECK(client_events(col).empty());
}

TEST_CASE("restart: a new boot id, sequence starts again") {
  Mosquitto broker(plugin_conf(kOpts));
  broker.start();
  std::string boot1;
  {
    mqtt::Collector col(broker.port(), kFilter, "c1");
    auto b = col.wait_for("/boot", "", 5000ms);
    REQUIRE(b);
    boot1 = body(*b)["boot"];
  }
  broker.restart();
  mqtt::Collector col(broker.port(), kFilter, "c2");
  auto b = col.wait_for("/boot", "", 5000ms);
  REQUIRE(b);
  CHECK(body(*b)["boot"] != boot1);
  CHECK(body(*b)["seq"] == 1);
  REQUIRE(wait_for([&] { return !last_heartbeat(col).is_null(); }, 3000ms));
  CHECK(last_heartbeat(col)["boot"] == body(*b)["boot"]);
}

TEST_CASE("bad plugin options refuse to load with a line naming the key") {
  Mosquitto broker(plugin_conf({"basic_auth defer", "conect_rate 5"}));
  CHECK_THROWS(broker.start());
  CHECK(read_file(broker.log_path()).find("plugin_opt_conect_rate: unknown option") !=
        std::string::npos);
  Mosquitto missing(plugin_conf({"node x"}));
  CHECK_THROWS(missing.start());
  CHECK(read_file(missing.log_path()).find("plugin_opt_basic_auth: required") != std::string::npos);
}

TEST_CASE("the plugin_opt_* lines of config/mosquitto-broker-ext.conf load as documented") {
  const std::string example =
      read_file(std::string(PRESENCE_SOURCE_DIR) + "/config/mosquitto-broker-ext.conf");
  REQUIRE_FALSE(example.empty());
  std::vector<std::string> opts;
  std::size_t pos = 0;
  while (pos < example.size()) {
    const std::size_t end = std::min(example.find('\n', pos), example.size());
    const std::string ln = example.substr(pos, end - pos);
    if (ln.rfind("plugin_opt_", 0) == 0) opts.push_back(ln.substr(11));
    pos = end + 1;
  }
  CHECK(opts.size() >= 6);
  Mosquitto broker(plugin_conf(opts));
  broker.start();
  mqtt::Collector col(broker.port(), "$SYS/presence/broker-1/#");
  REQUIRE(col.wait_for("/boot", "\"basic_auth\":\"defer\"", 5000ms));
  const std::string log = read_file(broker.log_path());
  CHECK(log.find("connect_rate=500/s connect_burst=2000") != std::string::npos);
  CHECK(log.find("flap_max_count=15 flap_window=60000ms flap_ban=300000ms") != std::string::npos);
}
