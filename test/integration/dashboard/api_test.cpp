// The /v1 API end to end (issue 7): real mosquitto, real presenced (LoopApiBackend on the
// engine thread, the alert policy from presence/app/alerting), real devices over MQTT, HTTP with
// cpp-httplib. Waits are bounded polls (test/support wait_for).
#include <doctest/doctest.h>
#include <httplib.h>
#include <mqtt/async_client.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "test/support/presenced.h"
#include "test/support/process.h"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using presence::test::wait_for;

constexpr const char* kToken = "itest-token-0123456789";

struct Stack {
  presence::test::Mosquitto broker;
  presence::test::TempDir dir;  // the test's own files (presencectl output)
  presence::test::PresencedProcess presenced;  // test/support: config, log, stop by pid
  int http_port = presenced.http_port();

  Stack() {
    broker.start();
    presenced.write_config(R"(mqtt:
  uri: )" + broker.uri() + R"(
  client_id: presenced-api-itest
presence:
  offline_grace: 1s
  online_stable_for: 1s
  restart_grace_min: 100ms
  restart_grace_settle: 100ms
  restart_grace_max: 1s
http:
  listen: 127.0.0.1:)" + std::to_string(http_port) + R"(
  token: )" + kToken + R"(
store:
  dir: )" + presenced.file("store") + R"(
output:
  coalesce_interval: 50ms
alerts:
  policy:
    incident_window: 1m
    incident_open_floor: 5
    incident_open_fraction: 0.2
)");
    presenced.launch();
    // Ready for these tests: out of restart grace and connected, not only /readyz.
    const bool ready = wait_for(
        [&] {
          auto r = client().Get("/v1/fleet");
          return r && r->status == 200 && !json::parse(r->body)["restart_grace"].get<bool>() &&
                 json::parse(r->body)["broker_connected"].get<bool>();
        },
        10s, 50ms);
    if (!ready)
      FAIL("presenced not ready:\n" << presenced.log());
  }

  httplib::Client client(bool token = false) const {
    httplib::Client c("127.0.0.1", http_port);
    c.set_connection_timeout(2s);
    c.set_read_timeout(5s);
    if (token) c.set_bearer_token_auth(kToken);
    return c;
  }
  json get(const std::string& path) const {
    auto r = client().Get(path.c_str());
    REQUIRE(r);
    INFO(path << " -> " << r->status << " " << r->body);
    REQUIRE(r->status == 200);
    return json::parse(r->body);
  }
  // Follows next_cursor to the end; every page within limit.
  std::vector<json> all(const std::string& query, std::size_t limit) const {
    std::vector<json> out;
    std::string cursor;
    for (int pages = 0; pages < 1000; ++pages) {
      const json j = get("/v1/devices?" + query + "&limit=" + std::to_string(limit) +
                         (cursor.empty() ? "" : "&cursor=" + cursor));
      CHECK(j["devices"].size() <= limit);
      for (const auto& d : j["devices"]) out.push_back(d);
      if (j["next_cursor"].is_null()) return out;
      cursor = j["next_cursor"];
    }
    FAIL("cursor never ended");
    return out;
  }
};

void publish_all(const std::string& uri,
                 const std::vector<std::pair<std::string, std::string>>& msgs) {
  mqtt::async_client c(uri, "api-itest-devices");
  c.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
  for (const auto& [topic, payload] : msgs) c.publish(topic, payload, 1, false)->wait();
  c.disconnect()->wait();
}

std::string id_of(int i) {
  return "dev-" + std::to_string(1000 + i);
}

}  // namespace

TEST_CASE("the /v1 API against a running presenced") {
  Stack s;
  // 45 devices in site north, 15 in south.
  std::vector<std::pair<std::string, std::string>> births;
  for (int i = 0; i < 60; ++i)
    births.emplace_back("devices/" + id_of(i) + "/status",
                        json{{"state", "online"}, {"site", i < 45 ? "north" : "south"}}.dump());
  publish_all(s.broker.uri(), births);
  REQUIRE(wait_for([&] { return s.get("/v1/fleet")["counts"]["online"] == 60; }, 10s, 50ms));

  SUBCASE("cursor pagination returns every device exactly once") {
    const auto devices = s.all("", 7);
    std::set<std::string> ids;
    for (const auto& d : devices) ids.insert(d["id"]);
    CHECK(devices.size() == 60);
    CHECK(ids.size() == 60);
    CHECK(s.all("label.site=south", 4).size() == 15);
    CHECK(s.all("label.site=north&state=online", 100).size() == 45);
    CHECK(s.all("state=offline", 10).empty());
    CHECK(s.all("id_prefix=dev-105", 10).size() == 10);  // dev-1050..1059
  }

  SUBCASE("device detail and JSON errors") {
    const json d = s.get("/v1/devices/" + id_of(3));
    CHECK(d["state"] == "online");
    CHECK(d["labels"]["site"] == "north");
    REQUIRE(d["transitions"].size() >= 1);
    CHECK(d["transitions"].back()["to"] == "online");
    auto r = s.client().Get("/v1/devices/nope");
    REQUIRE(r);
    CHECK(r->status == 404);
    CHECK(json::parse(r->body)["error"]["code"] == "not_found");
    auto m = s.client().Get("/metrics");
    REQUIRE(m);
    CHECK(m->body.find("presence_api_errors_total{code=\"not_found\"} 1\n") != std::string::npos);
    CHECK(m->body.find("presence_api_requests_total ") != std::string::npos);
    r = s.client().Get("/v1/devices?cursor=garbage");
    REQUIRE(r);
    CHECK(r->status == 400);
    const json h = s.get("/v1/fleet/history");
    REQUIRE(h["samples"].size() >= 1);  // the first batch is always sampled
    CHECK(h["samples"][0]["counts"].contains("online"));
    const json f = s.get("/v1/fleet");
    bool south = false;
    for (const auto& seg : f["segments"])
      if (seg["key"] == "site" && seg["value"] == "south") south = seg["devices"] == 15;
    CHECK(south);
  }

  SUBCASE("silences: token required, create, list, delete") {
    const std::string body = R"({"match":{"site":"south"},"duration":"30m","comment":"itest"})";
    auto r = s.client().Post("/v1/silences", body, "application/json");
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(s.get("/v1/silences")["silences"].empty());
    r = s.client(true).Post("/v1/silences", body, "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 201);
    const auto id = json::parse(r->body)["id"].get<std::uint64_t>();
    const json list = s.get("/v1/silences");
    REQUIRE(list["silences"].size() == 1);
    CHECK(list["silences"][0]["match"]["site"] == "south");
    CHECK(list["silences"][0]["comment"] == "itest");
    r = s.client(true).Post("/v1/silences", R"({"ends_at":"2001-01-01T00:00:00Z"})",
                            "application/json");
    REQUIRE(r);
    CHECK(r->status == 400);  // in the past
    r = s.client(true).Delete(("/v1/silences/" + std::to_string(id)).c_str());
    REQUIRE(r);
    CHECK(r->status == 204);
    r = s.client(true).Delete(("/v1/silences/" + std::to_string(id)).c_str());
    REQUIRE(r);
    CHECK(r->status == 404);
    CHECK(s.get("/v1/silences")["silences"].empty());
  }

  SUBCASE("concurrent readers while devices come and go: every answer is a 200") {
    std::atomic<int> ok{0}, bad{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 6; ++t)
      readers.emplace_back([&, t] {
        auto c = s.client();
        for (int i = 0; i < 40; ++i) {
          const std::string path = (i + t) % 3 == 0   ? "/v1/fleet"
                                   : (i + t) % 3 == 1 ? "/v1/devices?limit=13&state=online"
                                                      : "/v1/devices/" + id_of(i);
          auto r = c.Get(path.c_str());
          (r && r->status == 200 ? ok : bad)++;
        }
      });
    std::vector<std::pair<std::string, std::string>> churn;
    for (int round = 0; round < 3; ++round)
      for (int i = 0; i < 20; ++i)
        churn.emplace_back("devices/" + id_of(i) + "/status", round % 2 ? "online" : "offline");
    publish_all(s.broker.uri(), churn);
    for (auto& r : readers) r.join();
    CHECK(bad == 0);
    CHECK(ok == 240);
  }

  SUBCASE("scripts/presencectl") {
    const std::string ctl = std::string(PRESENCE_SOURCE_DIR) + "/scripts/presencectl";
    const std::map<std::string, std::string> env = {
        {"PRESENCE_URL", "http://127.0.0.1:" + std::to_string(s.http_port)}};
    auto run = [&](std::vector<std::string> args, const std::string& log,
                   std::map<std::string, std::string> e) {
      args.insert(args.begin(), {"bash", ctl});
      presence::test::Process p(args, s.dir.file(log), std::move(e));
      return p.wait_exit(20s);
    };
    CHECK(run({"fleet"}, "fleet.out", env) == 0);
    CHECK(json::parse(presence::test::read_file(s.dir.file("fleet.out")))["devices"] == 60);
    CHECK(run({"devices", "--label", "site=south", "--all"}, "all.out", env) == 0);
    const std::string all = presence::test::read_file(s.dir.file("all.out"));
    CHECK(std::count(all.begin(), all.end(), '\n') == 15);  // one JSON line per device
    CHECK(run({"device", "nope"}, "nope.out", env) == 1);
    CHECK(presence::test::read_file(s.dir.file("nope.out")).find("404") != std::string::npos);
    CHECK(run({"silence", "add", "--match", "site=north", "--duration", "1h"}, "denied.out", env) ==
          1);
    auto with_token = env;
    with_token["PRESENCE_TOKEN"] = kToken;
    CHECK(run({"silence", "add", "--match", "site=north", "--duration", "1h", "--comment",
               "say \"hi\""},
              "add.out", with_token) == 0);
    const json added = json::parse(presence::test::read_file(s.dir.file("add.out")));
    CHECK(added["comment"] == "say \"hi\"");
    CHECK(run({"silence", "rm", std::to_string(added["id"].get<int>())}, "rm.out", with_token) ==
          0);
    CHECK(s.get("/v1/silences")["silences"].empty());
    CHECK(run({"bogus"}, "usage.out", env) == 2);
  }

  SUBCASE("a segment drop: devices offline, one incident holding them") {
    std::vector<std::pair<std::string, std::string>> drops;
    for (int i = 45; i < 53; ++i) drops.emplace_back("devices/" + id_of(i) + "/status", "offline");
    publish_all(s.broker.uri(), drops);
    REQUIRE(wait_for([&] { return s.all("state=offline", 50).size() == 8; }, 10s, 100ms));
    json incidents;
    REQUIRE(wait_for(
        [&] {
          incidents = s.get("/v1/incidents")["incidents"];
          return incidents.size() == 1;
        },
        5s, 100ms));
    const json& i = incidents[0];
    CHECK(i["kind"] == "drop");
    CHECK(i["scope"]["key"] == "site");
    CHECK(i["scope"]["value"] == "south");
    const json detail = s.get("/v1/incidents/" + std::to_string(i["id"].get<int>()));
    CHECK(detail["held_devices"].size() == 8);
    const json d = s.get("/v1/devices/" + id_of(45));
    CHECK(d["state"] == "offline");
    CHECK(d["held_by_incident"] == i["id"]);
    const auto n = d["transitions"].size();
    REQUIRE(n >= 3);
    CHECK(d["transitions"][n - 2]["to"] == "suspect");
    CHECK(d["transitions"][n - 1]["to"] == "offline");
    auto r = s.client().Get("/v1/incidents/999");
    REQUIRE(r);
    CHECK(r->status == 404);
  }
}

TEST_CASE("off loopback without a token presenced refuses to start (nothing is bound)") {
  presence::test::TempDir dir;
  const std::string config = dir.write("presenced.yaml",
                                       "mqtt:\n  uri: tcp://127.0.0.1:1\nhttp:\n"
                                       "  listen: 0.0.0.0:1\nstore:\n  dir: " +
                                           dir.file("store") + "\n");
  presence::test::Process p({presence::test::PresencedProcess::binary(), "--config", config},
                            dir.file("log"));
  CHECK(p.wait_exit(10s) == 2);
  CHECK(presence::test::read_file(dir.file("log")).find("http.token") != std::string::npos);
}
