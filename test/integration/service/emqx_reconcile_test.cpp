// Start-up reconciliation through EMQX's clients REST API (issue 14 item 5): a mock of its
// documented GET /api/v5/clients (basic auth, page/limit, {"data":[...],"meta":{"hasnext":..}})
// on loopback. The fetch itself (pagination, 401, 500, timeout, bad body -> defined outcomes), then
// a real presenced on a real mosquitto: the listed clients are online at once, counted in
// /metrics (presence_reconciled_total{via="emqx"}, presence_reconcile_fetches_total{result}).
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "presence/ingest/emqx_clients.h"
#include "test/integration/service/harness.h"

using namespace presence::itest;
using presence::ingest::EmqxApiOptions;
using presence::ingest::EmqxFetchResult;
using presence::test::Mosquitto;

namespace {

// The mock: `clients` served `per_page` at a time; `mode` switches the failure.
struct MockEmqx {
  const std::vector<std::string> clients;  // fixed before the server thread starts
  std::atomic<int> mode{0};  // 0 ok, 1 = 500, 2 = hang 3 s, 3 = not JSON
  std::atomic<int> requests{0};
  std::atomic<int> bad_auth{0};
  httplib::Server server;
  std::thread thread;
  int port = 0;

  explicit MockEmqx(std::vector<std::string> c) : clients(std::move(c)) {
    server.Get("/api/v5/clients", [this](const httplib::Request& req, httplib::Response& res) {
      ++requests;
      // Basic auth of "key:secret".
      if (req.get_header_value("Authorization") != "Basic a2V5OnNlY3JldA==") {
        ++bad_auth;
        res.status = 401;
        res.set_content(R"({"code":"BAD_API_KEY_OR_SECRET","message":"Check api_key/api_secret"})",
                        "application/json");
        return;
      }
      if (mode == 1) {
        res.status = 500;
        return;
      }
      if (mode == 2) {
        std::this_thread::sleep_for(std::chrono::seconds(3));
        return;
      }
      if (mode == 3) {
        res.set_content("<html>proxy error</html>", "text/html");
        return;
      }
      CHECK(req.get_param_value("conn_state") == "connected");
      const int page = std::stoi(req.get_param_value("page"));
      const int limit = std::stoi(req.get_param_value("limit"));
      nlohmann::json data = nlohmann::json::array();
      const std::size_t first = static_cast<std::size_t>((page - 1) * limit);
      for (std::size_t i = first; i < clients.size() && i < first + limit; ++i)
        data.push_back({{"clientid", clients[i]},
                        {"connected", true},
                        {"keepalive", 60},
                        {"node", "emqx@127.0.0.1"},
                        {"connected_at", "2024-01-01T00:00:00.000+00:00"},
                        {"proto_ver", 4}});
      // A disconnected client a filter-ignoring EMQX might still list: skipped.
      if (page == 1) data.push_back({{"clientid", "em-offline"}, {"connected", false}});
      // One broken entry: costs itself only.
      if (page == 1) data.push_back({{"connected", true}});
      const bool hasnext = first + limit < clients.size();
      res.set_content(nlohmann::json{{"data", data},
                                     {"meta",
                                      {{"page", page},
                                       {"limit", limit},
                                       {"hasnext", hasnext},
                                       {"count", clients.size()}}}}
                          .dump(),
                      "application/json");
    });
    port = server.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { server.listen_after_bind(); });
    wait_for([this] { return server.is_running(); }, std::chrono::seconds(5));
  }
  ~MockEmqx() {
    server.stop();
    thread.join();
  }
  EmqxApiOptions options() const {
    EmqxApiOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(port);
    o.api_key = "key";
    o.api_secret = "secret";
    o.page_size = 2;
    o.timeout = std::chrono::milliseconds(1000);
    o.attempts = 2;
    o.retry_backoff = std::chrono::milliseconds(50);
    return o;
  }
};

}  // namespace

TEST_CASE("emqx clients API: pages, auth, and each failure's defined outcome") {
  MockEmqx mock({"em-1", "em-2", "em-3", "em-4", "em-5"});
  const presence::ingest::ParseLimits limits;

  SUBCASE("pages until hasnext is false; disconnected and broken entries are not listed") {
    const auto f = presence::ingest::fetch_emqx_clients(mock.options(), limits);
    CHECK(f.result == EmqxFetchResult::Ok);
    CHECK(f.pages == 3);
    CHECK(f.ids == mock.clients);
    CHECK(f.bad_entries == 1);
    const auto p = presence::ingest::emqx_client_list(f);
    CHECK(p.what == presence::ingest::Parsed::What::ClientList);
    CHECK(p.source == presence::core::Source::Emqx);
    CHECK(p.ids.size() == p.sessions.size());
  }
  SUBCASE("401: unauthorized at once, not retried") {
    auto o = mock.options();
    o.api_secret = "wrong";
    const auto f = presence::ingest::fetch_emqx_clients(o, limits);
    CHECK(f.result == EmqxFetchResult::Unauthorized);
    CHECK(f.http_status == 401);
    CHECK(mock.requests == 1);
    CHECK(f.detail.find("api_secret") != std::string::npos);
  }
  SUBCASE("500: retried `attempts` times, then http_error") {
    mock.mode = 1;
    const auto f = presence::ingest::fetch_emqx_clients(mock.options(), limits);
    CHECK(f.result == EmqxFetchResult::HttpError);
    CHECK(f.http_status == 500);
    CHECK(mock.requests == 2);
    CHECK(f.ids.empty());
  }
  SUBCASE("a server that does not answer: timeout, bounded") {
    mock.mode = 2;
    auto o = mock.options();
    o.attempts = 1;
    const auto t0 = std::chrono::steady_clock::now();
    const auto f = presence::ingest::fetch_emqx_clients(o, limits);
    CHECK(f.result == EmqxFetchResult::Timeout);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2500));
  }
  SUBCASE("not the documented JSON: bad_response") {
    mock.mode = 3;
    const auto f = presence::ingest::fetch_emqx_clients(mock.options(), limits);
    CHECK(f.result == EmqxFetchResult::BadResponse);
  }
  SUBCASE("nothing listening: network") {
    auto o = mock.options();
    o.url = "http://127.0.0.1:" + std::to_string(presence::test::free_tcp_port());
    o.attempts = 1;
    const auto f = presence::ingest::fetch_emqx_clients(o, limits);
    CHECK(f.result == EmqxFetchResult::Network);
  }
  SUBCASE("abort: a stopping presenced does not wait for a hanging EMQX") {
    mock.mode = 2;
    auto o = mock.options();
    o.timeout = std::chrono::milliseconds(10000);
    std::atomic<bool> abort{false};
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      abort = true;
    });
    const auto t0 = std::chrono::steady_clock::now();
    const auto f = presence::ingest::fetch_emqx_clients(o, limits, &abort);
    stopper.join();
    CHECK(f.result == EmqxFetchResult::Aborted);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2000));
  }
}

TEST_CASE("emqx reconciliation: listed clients are online at once, counted in /metrics") {
  MockEmqx mock({"em-a", "em-b", "em-c"});
  Mosquitto broker;
  broker.start();
  PresencedOptions o;
  o.restart_grace_min = "5s";
  o.restart_grace_max = "10s";
  o.extra = "emqx_api:\n  url: http://127.0.0.1:" + std::to_string(mock.port) +
            "\n  api_key: key\n  api_secret: secret\n  page_size: 2\n";
  Presenced presenced(broker.port(), o);
  presenced.start();
  for (const auto& id : mock.clients) {
    INFO(id);
    CHECK(wait_for(
        [&] {
          auto j = nlohmann::json::parse(presenced.body("/v1/devices/" + id), nullptr, false);
          return j.is_object() && j.value("state", "") == "online";
        },
        5s));
  }
  CHECK(presenced.metric("presence_reconciled_total{via=\"emqx\"}") == 3);
  CHECK(presenced.metric("presence_reconcile_fetches_total{result=\"ok\"}") == 1);
  CHECK(presenced.metric("presence_reconcile_fetches_total{result=\"unauthorized\"}") == 0);
  CHECK(presenced.status("/v1/devices/em-offline") == 404);
  CHECK(presenced.log().find("emqx api: 3 connected client(s) in 2 page(s)") != std::string::npos);
  REQUIRE(presenced.stop() == 0);

  // Wrong secret: counted, logged once as an error, presenced keeps running as without the API.
  PresencedOptions bad = o;
  bad.extra = "emqx_api:\n  url: http://127.0.0.1:" + std::to_string(mock.port) +
              "\n  api_key: key\n  api_secret: nope\n";
  Presenced p2(broker.port(), bad);
  p2.start();
  CHECK(wait_for(
      [&] { return p2.metric("presence_reconcile_fetches_total{result=\"unauthorized\"}") == 1; },
      5s));
  CHECK(p2.metric("presence_reconciled_total{via=\"emqx\"}") == 0);
  CHECK(p2.log().find("emqx api: clients not listed (unauthorized") != std::string::npos);
  CHECK(p2.status("/readyz") == 200);
  REQUIRE(p2.stop() == 0);
}
