// Storm protection at the door (issue 4, post-mortem 000-rms-reconnect-storm): the connect-rate
// token bucket and the per-client flap ban refuse with CONNACK 5 and admit again on time; 2,000
// clients connecting at once do not crash the broker. Windows are kept small via options.
#include <poll.h>
#include <sys/resource.h>

#include <doctest/doctest.h>

#include <memory>

#include "broker_fixture.h"

using namespace presence::test;
using namespace presence::test::broker_ext;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

mqtt::ConnectOptions id(const std::string& client_id) {
  mqtt::ConnectOptions o;
  o.client_id = client_id;
  return o;
}

int connect_once(int port, const std::string& client_id) {
  mqtt::RawClient c;
  const int rc = c.connect(port, id(client_id));
  c.disconnect();
  return rc;
}

}  // namespace

TEST_CASE("token bucket: a burst beyond connect_burst is refused (CONNACK 5), then admitted") {
  Mosquitto broker(plugin_conf({"basic_auth defer", "node itest", "connect_rate 5",
                                "connect_burst 5", "refusal_log_interval 1s"}));
  broker.start();
  mqtt::Collector col(broker.port(), kFilter);  // takes one token
  REQUIRE(col.wait_for("/boot", "", 5000ms));

  mqtt::RawClient keeper;
  REQUIRE(keeper.connect(broker.port(), id("keeper")) == 0);  // a live session, second token

  int accepted = 0, refused = 0;
  for (int i = 0; i < 12; ++i) {
    const int rc = connect_once(broker.port(), "burst-" + std::to_string(i));
    CHECK((rc == 0 || rc == 5));
    (rc == 0 ? accepted : refused) += 1;
  }
  CHECK(refused >= 6);
  CHECK(accepted <= 6);  // 3 tokens left + at most ~3 refilled while looping

  // A refused takeover attempt leaves the live session alone.
  CHECK(connect_once(broker.port(), "keeper") == 5);
  CHECK(keeper.ping());
  CHECK_FALSE(keeper.wait_closed(200ms));

  // Admitted again once a token refills (one per 200 ms at 5/s).
  const auto t0 = Clock::now();
  int rc = -1;
  REQUIRE(wait_for([&] { return (rc = connect_once(broker.port(), "later")) == 0; }, 2000ms, 20ms));
  CHECK(Clock::now() - t0 <= 1000ms);

  REQUIRE(wait_for([&] {
    auto hb = last_heartbeat(col);
    return !hb.is_null() && hb["refused_rate_limited"].get<int>() >= refused + 1;
  }, 3000ms));
  CHECK(wait_for([&] {
    return read_file(broker.log_path()).find("presence: refused") != std::string::npos;
  }, 3000ms));
  CHECK(client_events(col, "burst-" + std::to_string(11)).size() <= 2);
}

TEST_CASE("flap ban: the (max+1)-th connect in the window is refused, the id is banned, then ok") {
  Mosquitto broker(plugin_conf({"basic_auth defer", "node itest", "flap_max_count 3",
                                "flap_window 5s", "flap_ban 2s"}));
  broker.start();
  mqtt::Collector col(broker.port(), kFilter);
  REQUIRE(col.wait_for("/boot", "", 5000ms));

  for (int i = 0; i < 3; ++i) CHECK(connect_once(broker.port(), "flappy") == 0);
  const auto t_ban = Clock::now();
  CHECK(connect_once(broker.port(), "flappy") == 5);
  CHECK(connect_once(broker.port(), "steady") == 0);  // other ids unaffected
  {
    // An MQTT 5 client sees reason code 0x87 (Not authorized) for the same refusal.
    mqtt::RawClient v5;
    mqtt::ConnectOptions o = id("flappy");
    o.protocol = 5;
    CHECK(v5.connect(broker.port(), o) == 0x87);
  }
  std::this_thread::sleep_for(1500ms);                 // well inside the 2 s ban
  CHECK(connect_once(broker.port(), "flappy") == 5);

  REQUIRE(wait_for([&] { return connect_once(broker.port(), "flappy") == 0; }, 3000ms, 50ms));
  const auto banned_for = Clock::now() - t_ban;
  CHECK(banned_for >= 1900ms);
  CHECK(banned_for <= 2800ms);

  REQUIRE(wait_for([&] {
    auto hb = last_heartbeat(col);
    return !hb.is_null() && hb["refused_flap_banned"].get<int>() >= 2;
  }, 3000ms));
  // 3 admitted + the one after the ban: 4 connected events, no event for refused attempts.
  auto connected = [&] {
    std::size_t n = 0;
    for (auto& e : client_events(col, "flappy")) n += e["_kind"] == "connected" ? 1 : 0;
    return n;
  };
  CHECK(wait_for([&] { return connected() >= 4; }, 3000ms));
  CHECK(connected() == 4);
}

TEST_CASE("2,000 clients connecting at once: all accepted and reported, broker keeps running") {
  rlimit lim{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &lim) == 0);
  const rlim_t want = 8192;
  if (lim.rlim_cur < want) {
    lim.rlim_cur = std::min<rlim_t>(want, lim.rlim_max);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lim) == 0);  // the broker inherits it
  }
  // Each side (this process, the broker it spawns) holds 2,000 sockets plus a few files.
  REQUIRE_MESSAGE(lim.rlim_cur >= 2200, "RLIMIT_NOFILE hard limit too low for 2,000 clients");

  Mosquitto broker(plugin_conf({"basic_auth defer", "node itest"}));
  broker.start();
  mqtt::Collector col(broker.port(), kFilter);
  REQUIRE(col.wait_for("/boot", "", 5000ms));

  constexpr int kClients = 2000;
  const auto t_start = Clock::now();
  std::vector<std::unique_ptr<mqtt::RawClient>> clients;
  clients.reserve(kClients);
  // All connects start at once (non-blocking), each CONNECT goes out as soon as its TCP
  // handshake completes: the broker sees one burst, like a fleet reconnecting after an outage.
  for (int i = 0; i < kClients; ++i) {
    auto c = std::make_unique<mqtt::RawClient>();
    REQUIRE(c->open_async(broker.port()));
    clients.push_back(std::move(c));
  }
  std::vector<bool> sent(kClients, false);
  int n_sent = 0;
  const auto deadline = Clock::now() + 20s;
  while (n_sent < kClients && Clock::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<int> idx;
    for (int i = 0; i < kClients; ++i) {
      if (!sent[static_cast<std::size_t>(i)]) {
        fds.push_back(pollfd{clients[static_cast<std::size_t>(i)]->fd(), POLLOUT, 0});
        idx.push_back(i);
      }
    }
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if ((fds[k].revents & (POLLOUT | POLLERR | POLLHUP)) == 0) continue;
      auto& c = clients[static_cast<std::size_t>(idx[k])];
      REQUIRE(c->finish_open());
      mqtt::ConnectOptions o = id("swarm-" + std::to_string(idx[k]));
      o.keepalive = 120;
      REQUIRE(c->send_raw(mqtt::connect_packet(o)));
      sent[static_cast<std::size_t>(idx[k])] = true;
      ++n_sent;
    }
  }
  REQUIRE(n_sent == kClients);
  MESSAGE("sent 2000 CONNECTs in ", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t_start).count(), " ms");
  REQUIRE(wait_for([&] {
    auto hb = last_heartbeat(col);
    return !hb.is_null() && hb["clients"].get<int>() == kClients + 1;  // + the collector
  }, 20000ms, 50ms));
  CHECK(broker.running());
  MESSAGE("all connected after ", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t_start).count(), " ms");

  for (auto& c : clients) c->close();  // all gone at once
  REQUIRE(wait_for([&] {
    auto hb = last_heartbeat(col);
    return !hb.is_null() && hb["disconnects"].get<int>() == kClients && hb["clients"] == 1;
  }, 20000ms, 50ms));
  MESSAGE("all disconnected after ", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t_start).count(), " ms");
  CHECK(broker.running());
  std::size_t connected = 0, disconnected = 0;
  for (auto& e : client_events(col)) {
    if (e["_kind"] == "connected") ++connected;
    if (e["_kind"] == "disconnected") ++disconnected;
  }
  CHECK(connected == kClients);
  CHECK(disconnected == kClients);
}
