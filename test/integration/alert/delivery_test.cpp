// Every sink outcome over real HTTP on 127.0.0.1 (issue 5 "Sinks").
#include <doctest/doctest.h>

#include <functional>
#include <mutex>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <map>
#include <nlohmann/json.hpp>

#include "presence/alert/dispatcher.h"
#include "test/integration/alert/harness.h"
#include "test/support/mock_http.h"
#include "test/support/process.h"

using namespace presence;
using namespace presence::alert;
using presence::test::intent;
using presence::test::MockHttpServer;
using presence::test::MockResponse;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Action = core::AlertIntent::Action;

namespace {

constexpr auto kWait = std::chrono::milliseconds(10'000);

struct Harness {
  presence::test::TempDir dir;
  presence::test::SafeLogs logs;
  std::unique_ptr<Dispatcher> d;

  void start(std::vector<std::unique_ptr<Sink>> sinks, std::size_t max_entries = 10000,
             const std::function<void(DispatcherConfig&)>& tweak = {}) {
    DispatcherConfig c;
    c.outbox.path = dir.file("outbox.log");
    c.outbox.max_entries_per_sink = max_entries;
    c.anchor = presence::test::anchor_now();
    c.log = logs.fn();
    if (tweak) tweak(c);
    d = std::make_unique<Dispatcher>(c, std::move(sinks));
    const auto started = d->start();
    REQUIRE_MESSAGE(started.ok(), started.error);
  }
  std::vector<std::unique_ptr<Sink>> one(std::unique_ptr<Sink> s) {
    std::vector<std::unique_ptr<Sink>> v;
    v.push_back(std::move(s));
    return v;
  }
  SinkStats sink(std::size_t k = 0) const { return d->stats().sinks.at(k); }
};

std::unique_ptr<Sink> pd_sink(const MockHttpServer& m) {
  PagerDutyConfig c;
  c.sink = presence::test::fast("pagerduty", m.url("/v2/enqueue"));
  c.routing_key = "R0UTING";
  c.source = "presenced-test";
  return make_pagerduty_sink(c);
}

std::string hmac_reference(const std::string& key, const std::string& data) {
  // An independent HMAC (EVP_MAC, not the HMAC() the sink uses), as a receiver would compute it.
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params);
  EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  EVP_MAC_final(ctx, out, &len, sizeof out);
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (std::size_t i = 0; i < len; ++i) {
    hex.push_back(kHex[out[i] >> 4]);
    hex.push_back(kHex[out[i] & 0xF]);
  }
  return hex;
}

}  // namespace

TEST_CASE("PagerDuty 202: delivered exactly once with the documented body") {
  MockHttpServer pd;
  pd.set_default({202, R"({"status":"success","message":"Event processed","dedup_key":"k"})"});
  Harness h;
  h.start(h.one(pd_sink(pd)));
  h.d->submit({intent("dev-1")});
  REQUIRE(h.d->wait_idle(kWait));
  REQUIRE(pd.count() == 1);
  const auto req = pd.requests()[0];
  CHECK(req.method == "POST");
  CHECK(req.path == "/v2/enqueue");
  CHECK(req.header("Content-Type") == "application/json");
  const json j = json::parse(req.body);
  CHECK(j["routing_key"] == "R0UTING");
  CHECK(j["event_action"] == "trigger");
  CHECK(j["dedup_key"] == "dev-1");
  CHECK(j["payload"]["source"] == "presenced-test");
  CHECK(j["payload"]["severity"] == "error");
  const auto st = h.sink();
  CHECK(st.sent == 1);
  CHECK(st.requests == 1);
  CHECK(st.failed == 0);
  CHECK(st.depth == 0);
  // Nothing more arrives (the one place a short quiet period is the assertion).
  CHECK_FALSE(pd.wait_for_count(2, 200ms));
}

TEST_CASE("submit_decided (HA hand-off): the page carries its original decided time") {
  MockHttpServer pd;
  pd.set_default({202, R"({"status":"success","message":"Event processed","dedup_key":"k"})"});
  Harness h;
  h.start(h.one(pd_sink(pd)));
  const std::int64_t decided = 1'800'000'000'123;  // 2027-01-15T08:00:00.123Z
  h.d->submit_decided(intent("dev-1"), decided);
  REQUIRE(h.d->wait_idle(kWait));
  REQUIRE(pd.count() == 1);
  const json j = json::parse(pd.requests()[0].body);
  CHECK(j["dedup_key"] == "dev-1");
  CHECK(j["payload"]["timestamp"] == "2027-01-15T08:00:00.123Z");
}

TEST_CASE("PagerDuty 400: dead-lettered with the body logged, not retried; the next one goes") {
  MockHttpServer pd;
  pd.push(
      {400,
       R"({"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect"]})"});
  pd.set_default({202, "{}"});
  Harness h;
  h.start(h.one(pd_sink(pd)));
  h.d->submit({intent("bad"), intent("good")});
  REQUIRE(h.d->wait_idle(kWait));
  REQUIRE(pd.count() == 2);
  CHECK(json::parse(pd.requests()[0].body)["dedup_key"] == "bad");
  CHECK(json::parse(pd.requests()[1].body)["dedup_key"] == "good");
  const auto st = h.sink();
  CHECK(st.dead_lettered == 1);
  CHECK(st.sent == 1);
  CHECK(st.retried == 0);
  CHECK(h.logs.any("Length of 'routing_key' is incorrect"));
  CHECK(h.logs.any("dead-lettered"));
}

TEST_CASE("HA hooks: each page is seen queued before its request; a dead letter is seen dropped") {
  MockHttpServer pd;
  pd.push({400, R"({"status":"invalid event","message":"Event object is invalid"})"});
  pd.set_default({202, "{}"});
  std::mutex mu;
  std::vector<std::string> seen;  // "queued <key> <requests so far>" / "dropped <key>"
  Harness h;
  h.start(h.one(pd_sink(pd)), 10000, [&](DispatcherConfig& c) {
    c.queued = [&](const std::vector<OutboxEntry>& b) {
      std::lock_guard lock(mu);
      for (const auto& e : b)
        seen.push_back("queued " + e.intent.dedup_key + " " + std::to_string(pd.count()));
    };
    c.dropped = [&](const std::vector<OutboxEntry>& b) {
      std::lock_guard lock(mu);
      for (const auto& e : b) seen.push_back("dropped " + e.intent.dedup_key);
    };
  });
  h.d->submit({intent("bad"), intent("good")});
  REQUIRE(h.d->wait_idle(kWait));
  REQUIRE(pd.count() == 2);
  std::lock_guard lock(mu);
  CHECK(seen == std::vector<std::string>{"queued bad 0", "queued good 0", "dropped bad"});
}

TEST_CASE("PagerDuty 429 then 500 then 202: retried with backoff, delivered once, order kept") {
  MockHttpServer pd;
  pd.push({429, R"({"status":"throttled"})"});
  pd.push({500, "oops"});
  pd.set_default({202, "{}"});
  Harness h;
  h.start(h.one(pd_sink(pd)));
  h.d->submit({intent("dev-1"), intent("dev-1", Action::Resolve)});
  REQUIRE(h.d->wait_idle(kWait));
  const auto reqs = pd.requests();
  REQUIRE(reqs.size() == 4);
  // The first entry (trigger) is retried until delivered; the resolve never overtakes it.
  for (int k = 0; k < 3; ++k) CHECK(json::parse(reqs[k].body)["event_action"] == "trigger");
  CHECK(json::parse(reqs[3].body)["event_action"] == "resolve");
  // Backoff: 20 ms, then 40 ms (jitter 0).
  CHECK(reqs[1].at - reqs[0].at >= 20ms);
  CHECK(reqs[2].at - reqs[1].at >= 40ms);
  const auto st = h.sink();
  CHECK(st.sent == 2);
  CHECK(st.retried == 2);
  CHECK(st.failed == 2);
  CHECK_FALSE(st.failing);
  CHECK(h.logs.any("delivering again"));
}

TEST_CASE("endpoint down: retried, nothing lost, delivered in order when it comes back") {
  const int port = presence::test::free_tcp_port();  // nothing listens: connections are refused
  PagerDutyConfig c;
  c.sink =
      presence::test::fast("pagerduty", "http://127.0.0.1:" + std::to_string(port) + "/v2/enqueue");
  c.routing_key = "rk";
  Harness h;
  h.start(h.one(make_pagerduty_sink(c)));
  std::vector<core::AlertIntent> batch;
  for (int k = 0; k < 5; ++k) batch.push_back(intent("dev-" + std::to_string(k)));
  h.d->submit(batch);
  REQUIRE(presence::test::wait_for([&] { return h.sink().failed >= 3; }, kWait));
  CHECK(h.sink().failing);
  CHECK(h.sink().depth == 5);
  // Three failed tries take at least 20 + 40 ms of backoff: the oldest entry has aged.
  CHECK(h.sink().oldest_age_ms >= 60);
  CHECK(h.d->stats().outbox_oldest_age_ms >= 60);
  CHECK(h.d->stats().outbox.depth == 5);

  MockHttpServer pd(port);  // the endpoint comes back on the same port
  pd.set_default({202, "{}"});
  REQUIRE(h.d->wait_idle(kWait));
  const auto reqs = pd.requests();
  REQUIRE(reqs.size() == 5);
  for (int k = 0; k < 5; ++k)
    CHECK(json::parse(reqs[k].body)["dedup_key"] == "dev-" + std::to_string(k));
  CHECK(h.sink().sent == 5);
}

TEST_CASE("a request that times out is retried") {
  MockHttpServer pd;
  pd.push({202, "{}", {}, 1500ms});  // answers after the client's total timeout
  pd.set_default({202, "{}"});
  PagerDutyConfig c;
  c.sink = presence::test::fast("pagerduty", pd.url("/v2/enqueue"));
  c.sink.timeout = 300ms;
  Harness h;
  h.start(h.one(make_pagerduty_sink(c)));
  h.d->submit({intent("slow")});
  REQUIRE(h.d->wait_idle(kWait));
  // At least one timeout and one retry (more only if this machine is very slow).
  CHECK(pd.count() >= 2);
  CHECK(h.sink().retried >= 1);
  CHECK(h.sink().retried == pd.count() - 1);
  CHECK(h.sink().sent == 1);
}

TEST_CASE("Slack 429 with Retry-After is honoured") {
  MockHttpServer slack;
  slack.push({429, "rate_limited", {{"Retry-After", "1"}}});
  slack.set_default({200, "ok"});
  SlackConfig c;
  c.sink = presence::test::fast("slack", slack.url("/services/T0/B0/X"));
  c.min_interval = 50ms;
  Harness h;
  h.start(h.one(make_slack_sink(c)));
  h.d->submit({intent("dev-1")});
  REQUIRE(h.d->wait_idle(kWait));
  const auto reqs = slack.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[1].at - reqs[0].at >= 950ms);  // not the 20 ms backoff
  CHECK(reqs[0].body == reqs[1].body);
  const json j = json::parse(reqs[1].body);
  CHECK(j.contains("text"));
  CHECK(j["blocks"].is_array());
  CHECK(h.sink().retried == 1);
}

TEST_CASE("Slack: at most one message per min_interval, bursts summarised") {
  MockHttpServer slack;
  slack.set_default({200, "ok"});
  SlackConfig c;
  c.sink = presence::test::fast("slack", slack.url("/hook"));
  c.min_interval = 200ms;
  c.summary_threshold = 3;
  c.summary_list = 2;
  Harness h;
  h.start(h.one(make_slack_sink(c)));

  // Three queued at once is not above the threshold: three messages, spaced.
  h.d->submit({intent("a"), intent("b"), intent("c")});
  REQUIRE(h.d->wait_idle(kWait));
  auto reqs = slack.requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[1].at - reqs[0].at >= 190ms);
  CHECK(reqs[2].at - reqs[1].at >= 190ms);

  // A burst of 20 becomes one summary message.
  std::vector<core::AlertIntent> burst;
  for (int k = 0; k < 20; ++k) burst.push_back(intent("dev-" + std::to_string(k)));
  h.d->submit(burst);
  REQUIRE(h.d->wait_idle(kWait));
  reqs = slack.requests();
  REQUIRE(reqs.size() == 4);
  const json j = json::parse(reqs[3].body);
  CHECK(j["text"].get<std::string>().find("20 alerts (20 triggered, 0 resolved)") !=
        std::string::npos);
  CHECK(j["blocks"][1]["text"]["text"].get<std::string>().find("and 18 more") != std::string::npos);
  CHECK(h.sink().sent == 23);
  CHECK(h.sink().summaries == 1);
}

TEST_CASE("webhook: the receiver verifies X-Presence-Signature; a wrong secret is rejected") {
  const std::string secret = "shared-secret";
  MockHttpServer hook;
  std::atomic<int> verified{0};
  hook.set_handler([&](const presence::test::RecordedRequest& r) {
    const std::string expected = "sha256=" + hmac_reference(secret, r.body);
    if (r.header("X-Presence-Signature") != expected) return MockResponse{401, "bad signature"};
    ++verified;
    return MockResponse{204, ""};
  });
  WebhookConfig good;
  good.sink = presence::test::fast("webhook", hook.url("/presence"));
  good.secret = secret;
  WebhookConfig bad = good;
  bad.sink.name = "webhook-wrong-secret";
  bad.secret = "not-the-secret";
  Harness h;
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(make_webhook_sink(good));
  sinks.push_back(make_webhook_sink(bad));
  h.start(std::move(sinks));
  h.d->submit({intent("dev-9")});
  REQUIRE(h.d->wait_idle(kWait));
  CHECK(hook.count() == 2);
  CHECK(verified == 1);
  CHECK(h.sink(0).sent == 1);
  CHECK(h.sink(1).dead_lettered == 1);  // 401: the request itself is refused
  const json j = json::parse(hook.requests()[0].body);
  CHECK(j["v"] == 1);
  CHECK(j["dedup_key"] == "dev-9");
}

TEST_CASE("every sink gets every intent; a slow sink does not hold up the others") {
  MockHttpServer pd;
  MockHttpServer slack;
  pd.set_default({202, "{}"});
  slack.set_default({500, "down"});
  SlackConfig sc;
  sc.sink = presence::test::fast("slack", slack.url("/hook"));
  sc.min_interval = 0ms;
  Harness h;
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(pd_sink(pd));
  sinks.push_back(make_slack_sink(sc));
  h.start(std::move(sinks));
  h.d->submit({intent("a"), intent("b")});
  REQUIRE(presence::test::wait_for([&] { return h.sink(0).sent == 2; }, kWait));
  CHECK(h.sink(1).sent == 0);
  CHECK(h.sink(1).depth == 2);
  const auto st = h.d->stats();
  CHECK(st.outbox.depth == 2);
  CHECK(st.submitted == 2);
  slack.set_default({200, "ok"});
  REQUIRE(h.d->wait_idle(kWait));
  CHECK(h.sink(1).sent == 2);
}

// Issue 11: a Notify (a healed blip's info notice) is never a PagerDuty event: the PagerDuty sink
// skips it (counted, presence_alerts_total{result="skipped"}), Slack gets it as a notice.
TEST_CASE("a Notify goes to Slack, never to PagerDuty (skipped, counted)") {
  MockHttpServer pd;
  MockHttpServer slack;
  pd.set_default({202, "{}"});
  slack.set_default({200, "ok"});
  SlackConfig sc;
  sc.sink = presence::test::fast("slack", slack.url("/hook"));
  sc.min_interval = 0ms;
  Harness h;
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(pd_sink(pd));
  sinks.push_back(make_slack_sink(sc));
  h.start(std::move(sinks));
  core::AlertIntent n = intent("presence/incident/1", Action::Notify);
  n.type = core::AlertIntent::Type::FleetIncident;
  n.severity = core::Severity::Info;
  n.summary = "Blip in site=site-b: 18 devices dropped, 18 were back within 1.0 s; not paged";
  h.d->submit({n, intent("dev-1")});
  REQUIRE(h.d->wait_idle(kWait));
  REQUIRE(pd.count() == 1);
  CHECK(json::parse(pd.requests()[0].body)["dedup_key"] == "dev-1");
  CHECK(h.sink(0).skipped == 1);
  CHECK(h.sink(0).sent == 1);
  REQUIRE(slack.count() == 2);
  CHECK(json::parse(slack.requests()[0].body)["text"].get<std::string>().rfind(":information_source: NOTICE", 0) == 0);
  CHECK(h.sink(1).skipped == 0);
  CHECK(h.sink(1).sent == 2);
}

TEST_CASE("start() refuses a bad sink list with a clear error") {
  presence::test::TempDir dir;
  auto try_start = [&](std::vector<std::unique_ptr<Sink>> sinks) {
    DispatcherConfig c;
    c.outbox.path = dir.file("outbox.log");
    Dispatcher d(c, std::move(sinks));
    const auto started = d.start();
    return started.ok() ? std::string("started") : started.error;
  };
  {
    std::vector<std::unique_ptr<Sink>> sinks;
    PagerDutyConfig a;
    sinks.push_back(make_pagerduty_sink(a));
    sinks.push_back(make_pagerduty_sink(a));
    CHECK(try_start(std::move(sinks)).find("duplicate sink name 'pagerduty'") != std::string::npos);
  }
  {
    std::vector<std::unique_ptr<Sink>> sinks;
    sinks.push_back(make_slack_sink(SlackConfig{}));  // no URL
    CHECK(try_start(std::move(sinks)).find("'slack': url '' is not an http(s) URL") !=
          std::string::npos);
  }
  {
    std::vector<std::unique_ptr<Sink>> sinks;
    WebhookConfig w;
    w.sink.url = "ftp://example.invalid/x";
    sinks.push_back(make_webhook_sink(w));
    CHECK(try_start(std::move(sinks)).find("not an http(s) URL") != std::string::npos);
  }
  {
    DispatcherConfig c;
    c.outbox.path = dir.file("no/such/dir/outbox.log");
    std::vector<std::unique_ptr<Sink>> sinks;
    sinks.push_back(make_pagerduty_sink(PagerDutyConfig{}));
    Dispatcher d(c, std::move(sinks));
    const auto started = d.start();
    CHECK_FALSE(started.ok());
    CHECK(started.error.find("no/such/dir") != std::string::npos);
  }
}

TEST_CASE("routing: each sink gets only the intents it accepts (one sink per routing key)") {
  MockHttpServer pd;
  pd.set_default({202, "{}"});
  auto route_of = [](const core::AlertIntent& i) {
    for (const auto& [k, v] : i.details) {
      if (k == "route") return v;
    }
    return std::string("default");
  };
  PagerDutyConfig main_key;
  main_key.sink = presence::test::fast("pagerduty", pd.url("/v2/enqueue"));
  main_key.routing_key = "MAIN";
  main_key.sink.accepts = [&](const core::AlertIntent& i) { return route_of(i) == "default"; };
  PagerDutyConfig berlin = main_key;
  berlin.sink.name = "pagerduty/berlin";
  berlin.routing_key = "BERLIN";
  berlin.sink.accepts = [&](const core::AlertIntent& i) { return route_of(i) == "berlin"; };
  Harness h;
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(make_pagerduty_sink(main_key));
  sinks.push_back(make_pagerduty_sink(berlin));
  h.start(std::move(sinks));
  auto b = intent("dev-b");
  b.details.emplace_back("route", "berlin");
  h.d->submit({intent("dev-a"), b});
  REQUIRE(h.d->wait_idle(kWait));
  REQUIRE(pd.count() == 2);
  std::map<std::string, std::string> key_of;
  for (const auto& r : pd.requests()) {
    const json j = json::parse(r.body);
    key_of[j["dedup_key"]] = j["routing_key"];
  }
  CHECK(key_of["dev-a"] == "MAIN");
  CHECK(key_of["dev-b"] == "BERLIN");
  CHECK(h.sink(0).sent == 1);
  CHECK(h.sink(1).sent == 1);
}

TEST_CASE("stop() cancels a hanging request promptly; the alert is sent after restart") {
  presence::test::TempDir dir;
  MockHttpServer pd;
  pd.push({202, "{}", {}, 0ms, true});  // hangs
  pd.set_default({202, "{}"});
  PagerDutyConfig c;
  c.sink = presence::test::fast("pagerduty", pd.url("/v2/enqueue"));
  c.sink.timeout = 20'000ms;
  DispatcherConfig dc;
  dc.outbox.path = dir.file("outbox.log");
  dc.anchor = presence::test::anchor_now();
  presence::test::SafeLogs logs;
  dc.log = logs.fn();
  {
    std::vector<std::unique_ptr<Sink>> sinks;
    sinks.push_back(make_pagerduty_sink(c));
    Dispatcher d(dc, std::move(sinks));
    REQUIRE(d.start().ok());
    d.submit({intent("dev-1")});
    REQUIRE(pd.wait_for_count(1, kWait));
    const auto t0 = std::chrono::steady_clock::now();
    d.stop();
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);  // not the 20 s request timeout
    CHECK(d.stats().outbox.depth == 1);
  }
  pd.release_hangs();
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(make_pagerduty_sink(c));
  Dispatcher d(dc, std::move(sinks));
  REQUIRE(d.start().ok());
  REQUIRE(d.wait_idle(kWait));
  CHECK(pd.count() == 2);
  CHECK(logs.any("resuming 1 undelivered"));
}

TEST_CASE("a sink down for long keeps a bounded queue: coalesced per key, oldest dropped") {
  MockHttpServer pd;
  pd.set_default({503, "maintenance"});
  Harness h;
  h.start(h.one(pd_sink(pd)), /*max_entries=*/4);
  // Wait until the first entry is in flight (retrying), then pile up more.
  h.d->submit({intent("a")});
  REQUIRE(pd.wait_for_count(2, kWait));
  std::vector<core::AlertIntent> more{intent("b"), intent("b", Action::Resolve), intent("c"),
                                      intent("d"), intent("e")};
  h.d->submit(more);
  REQUIRE(h.d->wait_durable(kWait));
  // a (in flight), b+ b- c d e = 6 > 4: b+ coalesced into b-, then the oldest (b-) dropped.
  auto st = h.sink();
  CHECK(st.depth == 4);
  CHECK(st.coalesced == 1);
  CHECK(st.dropped == 1);
  pd.set_default({202, "{}"});
  REQUIRE(h.d->wait_idle(kWait));
  std::vector<std::string> delivered;
  for (const auto& r : pd.requests()) delivered.push_back(json::parse(r.body)["dedup_key"]);
  // The last four requests are the survivors, in order.
  REQUIRE(delivered.size() >= 4);
  CHECK(std::vector<std::string>(delivered.end() - 4, delivered.end()) ==
        std::vector<std::string>{"a", "c", "d", "e"});
}
