// broker-ext must never weaken or change Mosquitto's authentication (issue 4). Differential test:
// the same clients against the same broker config without the plugin, with basic_auth defer and
// with basic_auth off; the CONNACK codes must be identical, except the one documented case
// (no password_file, allow_anonymous true, client sends a username, basic_auth defer: refused).
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <signal.h>

#include <map>

#include "broker_fixture.h"

using namespace presence::test;
using namespace presence::test::broker_ext;
using namespace std::chrono_literals;

namespace {

struct Client {
  const char* name;
  std::optional<std::string> user, pass;
};
const std::vector<Client> kClients = {
    {"anonymous", std::nullopt, std::nullopt},
    {"good", "alice", "secret"},
    {"bad_password", "alice", "wrong"},
    {"unknown_user", "mallory", "secret"},
    {"username_only", "alice", std::nullopt},
};

std::string make_password_file(const TempDir& dir) {
  const std::string path = dir.file("passwd");
  Process p({find_program("mosquitto_passwd"), "-c", "-b", path, "alice", "secret"});
  REQUIRE(p.wait_exit(10000ms) == 0);
  // Started as root, mosquitto drops to user "mosquitto" before it reads password_file.
  ::chmod(dir.path().c_str(), 0755);
  ::chmod(path.c_str(), 0644);
  return path;
}

// CONNACK code per client name.
std::map<std::string, int> run(const std::string& extra_conf, bool allow_anonymous) {
  Mosquitto broker(extra_conf, allow_anonymous);
  broker.start();
  std::map<std::string, int> codes;
  int n = 0;
  for (const auto& c : kClients) {
    mqtt::ConnectOptions o;
    o.client_id = std::string("auth-") + c.name + std::to_string(n++);
    o.username = c.user;
    o.password = c.pass;
    mqtt::RawClient rc;
    codes[c.name] = rc.connect(broker.port(), o);
    rc.disconnect();
  }
  return codes;
}

}  // namespace

TEST_CASE("auth results are unchanged by the plugin (password_file x allow_anonymous)") {
  TempDir dir;
  const std::string pw = make_password_file(dir);
  for (bool with_pwfile : {true, false}) {
    for (bool anon : {true, false}) {
      CAPTURE(with_pwfile);
      CAPTURE(anon);
      const std::string base = with_pwfile ? "password_file " + pw + "\n" : std::string();
      const auto plain = run(base, anon);
      const auto deferring = run(base + plugin_conf({"basic_auth defer", "node itest"}), anon);
      const auto off = run(base + plugin_conf({"basic_auth off", "node itest"}), anon);
      for (const auto& c : kClients) {
        CAPTURE(c.name);
        CHECK(plain.at(c.name) >= 0);  // every client got a CONNACK
        CHECK(off.at(c.name) == plain.at(c.name));
        const bool documented_exception = !with_pwfile && anon && c.user.has_value();
        if (documented_exception) {
          CHECK(plain.at(c.name) == 0);
          CHECK(deferring.at(c.name) == 5);  // refused: see docs/broker-ext.md, Authentication
        } else {
          CHECK(deferring.at(c.name) == plain.at(c.name));
        }
      }
      // Sanity: the matrix really exercises both outcomes.
      if (with_pwfile) {
        CHECK(plain.at("good") == 0);
        CHECK(plain.at("bad_password") == 5);
        CHECK(plain.at("anonymous") == (anon ? 0 : 5));
      }
    }
  }
}

TEST_CASE("with a password_file: good login gets a connected event with its username, bad none") {
  TempDir dir;
  const std::string pw = make_password_file(dir);
  Mosquitto broker("password_file " + pw + "\n" + plugin_conf({"basic_auth defer", "node itest"}),
                   /*allow_anonymous=*/true);
  broker.start();
  mqtt::Collector col(broker.port(), kFilter);
  REQUIRE(col.wait_for("/boot", "", 5000ms));

  mqtt::ConnectOptions bad;
  bad.client_id = "dev-bad";
  bad.username = "alice";
  bad.password = "wrong";
  mqtt::RawClient b;
  CHECK(b.connect(broker.port(), bad) == 5);

  mqtt::ConnectOptions good = bad;
  good.client_id = "dev-good";
  good.password = "secret";
  mqtt::RawClient g;
  REQUIRE(g.connect(broker.port(), good) == 0);
  std::vector<nlohmann::json> ev;
  REQUIRE(wait_for([&] { return !(ev = client_events(col, "dev-good")).empty(); }, 3000ms));
  CHECK(ev[0]["_kind"] == "connected");
  CHECK(ev[0]["username"] == "alice");

  // A refused login that reuses a live client id must not disturb the live session.
  mqtt::ConnectOptions hijack = bad;
  hijack.client_id = "dev-good";
  mqtt::RawClient h;
  CHECK(h.connect(broker.port(), hijack) == 5);
  REQUIRE(wait_for([&] {
    auto hb = last_heartbeat(col);
    return !hb.is_null() && hb["auth_refused"] == 2;
  }, 3000ms));
  CHECK(client_events(col, "dev-bad").empty());
  CHECK(client_events(col, "dev-good").size() == 1);  // still just the connected event
  CHECK(g.ping());
  CHECK_FALSE(g.wait_closed(300ms));
}

TEST_CASE("SIGHUP reload: live sessions are not reported again, auth still decided as before") {
  TempDir dir;
  const std::string pw = make_password_file(dir);
  // flap_max_count 1: were the reload's re-auth counted as a connect, it would ban and kick the
  // live clients (security_default.c disconnects any client the chain no longer accepts).
  Mosquitto broker("password_file " + pw + "\n" +
                       plugin_conf({"basic_auth defer", "node itest", "flap_max_count 1",
                                    "flap_window 1m"}),
                   /*allow_anonymous=*/false);
  broker.start();
  mqtt::ConnectOptions good;
  good.client_id = "collector-auth";
  good.username = "alice";
  good.password = "secret";
  // The collector itself must log in now that anonymous clients are refused.
  mqtt::RawClient sub;
  REQUIRE(sub.connect(broker.port(), good) == 0);
  REQUIRE(sub.subscribe(kFilter));
  REQUIRE(sub.read_publish(3000ms));  // retained boot: the subscription is active

  good.client_id = "live";
  mqtt::RawClient live;
  REQUIRE(live.connect(broker.port(), good) == 0);
  int connected = 0;
  auto drain = [&](std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
      auto p = sub.read_publish(100ms);
      if (p && p->topic.find("/clients/live/connected") != std::string::npos) ++connected;
    }
  };
  drain(500ms);
  CHECK(connected == 1);

  ::kill(broker.pid(), SIGHUP);  // Mosquitto re-runs the auth chain for every live client
  REQUIRE(wait_for([&] {
    return read_file(broker.log_path()).find("Reloading config") != std::string::npos;
  }, 3000ms));
  drain(1500ms);
  CHECK(connected == 1);  // no second connected event for the same connection
  CHECK(live.ping());
  CHECK_FALSE(live.wait_closed(300ms));

  mqtt::ConnectOptions bad = good;
  bad.client_id = "after-reload-bad";
  bad.password = "wrong";
  mqtt::RawClient b;
  CHECK(b.connect(broker.port(), bad) == 5);
  good.client_id = "after-reload-good";
  mqtt::RawClient g;
  CHECK(g.connect(broker.port(), good) == 0);
  mqtt::RawClient anon;
  mqtt::ConnectOptions a;
  a.client_id = "after-reload-anon";
  CHECK(anon.connect(broker.port(), a) == 5);
}
