// Never hang, never blow up (issue 19, items 2, 4, 8, 9, 11): the real presenced against a real
// mosquitto, attacked the way the issue's probes did, each case bounded in time.
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "test/integration/service/harness.h"

using namespace presence::itest;
using presence::test::Mosquitto;

namespace {

using Clock = std::chrono::steady_clock;

// The attacks write to sockets the server closes: a SIGPIPE would kill this test before its
// destructors stop presenced and mosquitto (it did once, leaving both running).
const bool kSigpipeIgnored = (::signal(SIGPIPE, SIG_IGN), true);

// A raw loopback TCP connection (the attacks below are not what an HTTP client library sends).
class RawConn {
 public:
  explicit RawConn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    }
    timeval tv{0, 200 * 1000};
    if (fd_ >= 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  bool ok() const { return fd_ >= 0; }
  bool send(const std::string& s) {
    return fd_ >= 0 && ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // Reads until the headers are complete (or timeout); returns what was read.
  std::string read_headers(std::chrono::milliseconds timeout) {
    std::string out;
    const auto end = Clock::now() + timeout;
    char buf[4096];
    while (Clock::now() < end && out.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) out.append(buf, static_cast<std::size_t>(n));
      if (n == 0) break;
    }
    return out;
  }

 private:
  int fd_ = -1;
};

// /healthz through a fresh connection; milliseconds until the answer, or -1.
long healthz_ms(int port, std::chrono::seconds timeout = std::chrono::seconds(10)) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(timeout);
  cli.set_read_timeout(timeout);
  const auto t0 = Clock::now();
  auto res = cli.Get("/healthz");
  if (!res || res->status != 200) return -1;
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

}  // namespace

// Item 2: scripts/demo.sh stops presenced and its broker together; presenced hung in an
// unbounded Paho disconnect wait in 2 of 5 tries. PRESENCE_SHUTDOWN_TRIES=20 for the issue's
// figure (CI runs 4: about 2 s each).
TEST_CASE("SIGTERM to presenced and its broker at the same moment: presenced exits within 5 s") {
  const int tries = env_int("PRESENCE_SHUTDOWN_TRIES", 4);
  long worst_ms = 0;
  for (int i = 0; i < tries; ++i) {
    Mosquitto broker;
    broker.start();
    Presenced p(broker.port());
    // A slow publish rate: the final flush has hundreds of state messages to send while the
    // broker goes away under it (what demo.sh's 200 devices left pending).
    p.write_config("output:\n  coalesce_interval: 50ms\n  publish_rate: 20\n");
    p.start();
    {
      mqtt::async_client devices(broker.uri(), "sd-" + unique_suffix(),
                                 mqtt::create_options(MQTTVERSION_3_1_1, 10000));
      devices.connect()->wait_for(10s);
      REQUIRE(devices.is_connected());
      mqtt::delivery_token_ptr last;
      for (int d = 0; d < 300; ++d)
        last = devices.publish("devices/sd-" + std::to_string(d) + "/status", "online", 1, false);
      last->wait_for(10s);
      devices.disconnect()->wait_for(2s);
    }
    REQUIRE(wait_for([&] { return p.metric("presence_publish_pending") > 100; }, 10s));
    // The order demo.sh uses: presenced, then its broker, with no pause.
    const auto t0 = Clock::now();
    p.signal(SIGTERM);
    ::kill(broker.pid(), SIGTERM);
    const int rc = p.wait_exit(15000ms);
    const long ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
    worst_ms = std::max(worst_ms, ms);
    INFO("try " << i << ": exit " << rc << " after " << ms << " ms; log:\n" << p.log());
    CHECK(rc == 0);
    CHECK(ms <= 5000);
  }
  MESSAGE("shutdown with the broker stopping: " << tries << " tries, worst exit " << worst_ms
                                                << " ms");
}

// Item 4: a liveness probe must be answered in milliseconds whatever other clients hold open.
TEST_CASE("idle keep-alive and slowloris connections do not delay /healthz") {
  Mosquitto broker;
  broker.start();
  Presenced p(broker.port());
  p.start();
  const int port = p.http_port();

  // 50 kept-alive connections that asked once and went idle.
  std::vector<std::unique_ptr<RawConn>> idle;
  for (int i = 0; i < 50; ++i) {
    idle.push_back(std::make_unique<RawConn>(port));
    REQUIRE(idle.back()->ok());
    REQUIRE(idle.back()->send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
    REQUIRE(idle.back()->read_headers(5000ms).find(" 200 ") != std::string::npos);
  }
  // 20 slowloris connections: a request line, then a header byte now and then, never the end.
  std::vector<std::unique_ptr<RawConn>> slow;
  for (int i = 0; i < 20; ++i) {
    slow.push_back(std::make_unique<RawConn>(port));
    REQUIRE(slow.back()->ok());
    REQUIRE(slow.back()->send("GET /v1/devices HTTP/1.1\r\nHost: t\r\nX-Slow: "));
  }
  long worst = 0;
  for (int round = 0; round < 3; ++round) {
    for (auto& s : slow) s->send("a");
    const long ms = healthz_ms(port);
    INFO("round " << round << ": /healthz after " << ms << " ms");
    REQUIRE(ms >= 0);
    worst = std::max(worst, ms);
    std::this_thread::sleep_for(500ms);  // the attackers' pace, not a wait for presenced
  }
  MESSAGE("/healthz with 50 idle + 20 slowloris connections: worst " << worst << " ms");
  // Milliseconds, with room for a loaded CI machine; the bug measured 4.5 s with 8 idle.
  CHECK(worst < 1000);
  CHECK(p.metric("presence_http_connections_open") >= 70);
}

// Item 4: http.health_listen serves probes on threads no API client can take.
TEST_CASE("http.health_listen answers while every API connection is taken") {
  Mosquitto broker;
  broker.start();
  const int health_port = presence::test::free_tcp_port();
  PresencedOptions o;
  o.http_extra = "  max_connections: 4\n  health_listen: 127.0.0.1:" +
                 std::to_string(health_port) + "\n";
  Presenced p(broker.port(), o);
  p.start();
  std::vector<std::unique_ptr<RawConn>> slow;
  for (int i = 0; i < 8; ++i) {
    slow.push_back(std::make_unique<RawConn>(p.http_port()));
    REQUIRE(slow.back()->ok());
    REQUIRE(slow.back()->send("GET /v1/devices HTTP/1.1\r\nHost: t\r\nX-Slow: "));
  }
  // All 4 threads of http.listen are held: a probe there waits (counted) ...
  std::string last_metrics;
  INFO(last_metrics);
  REQUIRE(wait_for([&] {
    httplib::Client cli("127.0.0.1", health_port);
    cli.set_read_timeout(2s);
    auto res = cli.Get("/metrics");
    if (!res) return false;
    last_metrics = res->body;
    const std::string key = "\npresence_http_connections_waited_total ";
    const auto at = res->body.find(key);
    return at != std::string::npos && std::atoi(res->body.c_str() + at + key.size()) >= 4;
  }, 10s));
  // ... the health listener answers at once.
  const long ms = healthz_ms(health_port);
  CHECK(ms >= 0);
  CHECK(ms < 1000);
  httplib::Client cli("127.0.0.1", health_port);
  auto api = cli.Get("/v1/devices");
  REQUIRE(api);
  CHECK(api->status == 404);  // probes only: the API is not on this listener
}

// Item 8: a body is judged by its headers, before it is read and before auth.
TEST_CASE("oversized and chunked request bodies are refused before they are read") {
  Mosquitto broker;
  broker.start();
  Presenced p(broker.port());
  p.start();
  {
    RawConn c(p.http_port());
    REQUIRE(c.ok());
    // 400 MiB announced, none sent, no token: the answer must come now, not after the body.
    REQUIRE(c.send("POST /v1/silences HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                   "Content-Length: 419430400\r\n\r\n{\"ends_at\":"));
    const std::string h = c.read_headers(3000ms);
    INFO(h);
    CHECK(h.rfind("HTTP/1.1 413", 0) == 0);
    CHECK(h.find("Connection: close") != std::string::npos);
  }
  {
    RawConn c(p.http_port());
    REQUIRE(c.ok());
    REQUIRE(c.send("POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "10000\r\n"));
    const std::string h = c.read_headers(3000ms);
    INFO(h);
    CHECK(h.rfind("HTTP/1.1 411", 0) == 0);
  }
  {
    // A body sent in full past the limit: refused too, and the memory stays put.
    httplib::Client cli("127.0.0.1", p.http_port());
    cli.set_read_timeout(10s);
    cli.set_write_timeout(10s);
    const std::string big(8 * 1024 * 1024, 'x');
    auto res = cli.Post("/v1/silences", big, "application/json");
    if (res) CHECK(res->status == 413);  // or the server closed before the client sent it all
  }
  CHECK(p.metric("presence_http_bodies_refused_total") >= 3);
  CHECK(healthz_ms(p.http_port()) >= 0);
}

// Item 9: a flood of new ids builds an output backlog; a real device's change goes first.
TEST_CASE("a junk-id flood does not delay a known device's state") {
  Mosquitto broker;
  broker.start();
  Presenced p(broker.port());
  p.write_config("output:\n  coalesce_interval: 50ms\n  publish_rate: 200\n");
  p.start();
  Observer obs(broker.uri());
  mqtt_pub(broker.port(), "devices/real-1/status", "online", true);
  REQUIRE(obs.wait_state("real-1", "online", 10s));

  // 4,000 junk ids at full speed: 20 s of output at 200 messages/s.
  mqtt::async_client flood(broker.uri(), "flood-" + unique_suffix(),
                           mqtt::create_options(MQTTVERSION_3_1_1, 10000));
  flood.connect()->wait_for(10s);
  REQUIRE(flood.is_connected());
  for (int i = 0; i < 4000; ++i)
    flood.publish("devices/junk-" + std::to_string(i) + "/status", "online", 0, false);
  REQUIRE(wait_for([&] { return p.metric("presence_publish_pending") > 1000; }, 10s));

  const auto t0 = Clock::now();
  mqtt_pub(broker.port(), "devices/real-1/status", "offline", true);
  // offline_grace is 1 s; the backlog behind it would take ~15 s more.
  CHECK(obs.wait_state("real-1", "offline", 6s));
  const long ms = static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
  MESSAGE("real device's offline published " << ms << " ms after its last-will, with "
                                             << p.metric("presence_publish_pending")
                                             << " messages still pending");
  CHECK(p.metric("presence_publish_pending") > 500);  // the flood's backlog is still there
  flood.disconnect()->wait_for(2s);
}

// Item 11: docs/runbook.md "Silencing" adds maintenance silences to the file and reloads.
TEST_CASE("SIGHUP applies alerts.silences: added, replaced and removed without a restart") {
  Mosquitto broker;
  broker.start();
  PresencedOptions o;
  o.http_extra = "  token: t0ken\n";
  Presenced p(broker.port(), o);
  p.start();
  const std::string base = presence::test::read_file(p.config_path());
  auto write = [&](const std::string& text) {
    std::FILE* f = std::fopen(p.config_path().c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(text.c_str(), f);
    std::fclose(f);
  };
  auto silences = [&] {
    const auto j = nlohmann::json::parse(p.body("/v1/silences"), nullptr, false);
    std::vector<std::string> out;
    if (j.is_object() && j.contains("silences"))
      for (const auto& s : j["silences"]) out.push_back(s.value("comment", ""));
    return out;
  };
  auto has = [&](const std::string& comment) {
    const auto all = silences();
    return std::find(all.begin(), all.end(), comment) != all.end();
  };
  // An API silence, which a reload must keep.
  {
    httplib::Client cli("127.0.0.1", p.http_port());
    cli.set_bearer_token_auth("t0ken");
    auto r = cli.Post("/v1/silences", R"({"match":{"site":"x"},"duration":"1h","comment":"api"})",
                      "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 201);
  }
  write(base + "alerts:\n  silences:\n    - match: {site: berlin}\n"
               "      starts: 2026-01-01T00:00:00Z\n      ends: 2199-01-01T00:00:00Z\n"
               "      comment: power work\n");
  p.signal(SIGHUP);
  REQUIRE(wait_for([&] { return has("config: power work"); }, 10s));
  write(base + "alerts:\n  silences:\n    - match: {site: paris}\n"
               "      starts: 2026-01-01T00:00:00Z\n      ends: 2199-01-01T00:00:00Z\n"
               "      comment: network work\n");
  p.signal(SIGHUP);
  REQUIRE(wait_for([&] { return has("config: network work"); }, 10s));
  CHECK_FALSE(has("config: power work"));
  CHECK(has("api"));
  write(base);
  p.signal(SIGHUP);
  REQUIRE(wait_for([&] { return silences() == std::vector<std::string>{"api"}; }, 10s));
  CHECK(p.log().find("alerts.silences applied") != std::string::npos);
}
