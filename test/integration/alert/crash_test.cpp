// Crash safety (issue 5 "Durability"): a child process that is mid-delivery is SIGKILLed; after a
// restart on the same outbox every intent reaches the receiver at least once, and exactly once
// except the single request that was in flight at the kill (its ack could not be recorded).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "presence/alert/dispatcher.h"
#include "test/integration/alert/harness.h"
#include "test/support/mock_http.h"
#include "test/support/process.h"

using namespace presence;
using namespace presence::alert;
using presence::test::MockHttpServer;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int kKeys = 10;  // 20 intents: trigger + resolve per key

presence::test::Process spawn_child(const presence::test::TempDir& dir, const std::string& outbox,
                                    const std::string& url) {
  return presence::test::Process({ALERT_CRASH_CHILD, outbox, url, std::to_string(kKeys)},
                                 dir.file("child.log"));
}

void crash(presence::test::Process& child) {
  const int status = child.stop(SIGKILL, 5000ms);
  CHECK(WIFSIGNALED(status));
}

std::unique_ptr<Dispatcher> restart(const std::string& outbox, const std::string& url) {
  PagerDutyConfig pd;
  pd.sink = presence::test::fast("pagerduty", url);
  pd.routing_key = "rk";
  DispatcherConfig c;
  c.outbox.path = outbox;
  c.anchor = presence::test::anchor_now();
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(make_pagerduty_sink(pd));
  auto d = std::make_unique<Dispatcher>(c, std::move(sinks));
  const auto started = d->start();
  REQUIRE_MESSAGE(started.ok(), started.error);
  return d;
}

// (dedup_key, action) -> times seen, plus per-key order check.
std::map<std::string, int> transitions(const std::vector<presence::test::RecordedRequest>& reqs) {
  std::map<std::string, int> seen;
  std::map<std::string, bool> resolved;
  for (const auto& r : reqs) {
    const json j = json::parse(r.body);
    const std::string key = j["dedup_key"];
    const std::string action = j["event_action"];
    // Per key, a trigger never arrives after its resolve (that would open a new PD alert).
    if (action == "trigger") CHECK_MESSAGE(!resolved[key], "trigger after resolve for " << key);
    if (action == "resolve") resolved[key] = true;
    ++seen[key + "/" + action];
  }
  return seen;
}

}  // namespace

TEST_CASE("SIGKILL mid-delivery: after restart all delivered, only the in-flight one twice") {
  presence::test::TempDir dir;
  const std::string outbox = dir.file("outbox.log");
  MockHttpServer pd;
  constexpr int kAcked = 7;
  for (int k = 0; k < kAcked; ++k) pd.push({202, "{}"});
  pd.push({202, "{}", {}, 0ms, /*hang=*/true});  // request kAcked + 1 never answers
  pd.set_default({202, "{}"});

  auto child = spawn_child(dir, outbox, pd.url("/v2/enqueue"));
  // The child is now blocked inside request kAcked + 1; the first kAcked acks are on disk
  // (each is fsync'd before the next request is taken).
  const bool reached = pd.wait_for_count(kAcked + 1, 10s);
  crash(child);
  REQUIRE(reached);
  pd.release_hangs();
  const auto before = pd.requests();
  REQUIRE(before.size() == static_cast<std::size_t>(kAcked + 1));
  const std::string in_flight = json::parse(before.back().body)["dedup_key"].get<std::string>() +
                                "/" +
                                json::parse(before.back().body)["event_action"].get<std::string>();

  auto d = restart(outbox, pd.url("/v2/enqueue"));
  CHECK(d->stats().outbox.loaded == static_cast<std::uint64_t>(2 * kKeys - kAcked));
  REQUIRE(d->wait_idle(10s));
  const auto seen = transitions(pd.requests());
  REQUIRE(seen.size() == static_cast<std::size_t>(2 * kKeys));
  for (const auto& [t, n] : seen) {
    INFO(t);
    CHECK(n == (t == in_flight ? 2 : 1));
  }
  CHECK(pd.count() == static_cast<std::size_t>(2 * kKeys + 1));
  CHECK(d->stats().sinks[0].sent == static_cast<std::uint64_t>(2 * kKeys - kAcked));
}

TEST_CASE("SIGKILL while the endpoint is down: nothing lost, each delivered exactly once") {
  presence::test::TempDir dir;
  const std::string outbox = dir.file("outbox.log");
  const int dead_port = presence::test::free_tcp_port();
  auto child =
      spawn_child(dir, outbox, "http://127.0.0.1:" + std::to_string(dead_port) + "/v2/enqueue");
  // Bounded wait for the child to report its intents durable (it keeps retrying meanwhile).
  const bool durable =
      presence::test::wait_for([&] { return std::filesystem::exists(outbox + ".durable"); }, 10s);
  crash(child);
  REQUIRE(durable);

  MockHttpServer pd;
  pd.set_default({202, "{}"});
  auto d = restart(outbox, pd.url("/v2/enqueue"));
  CHECK(d->stats().outbox.loaded == static_cast<std::uint64_t>(2 * kKeys));
  REQUIRE(d->wait_idle(10s));
  const auto seen = transitions(pd.requests());
  REQUIRE(seen.size() == static_cast<std::size_t>(2 * kKeys));
  for (const auto& [t, n] : seen) {
    INFO(t);
    CHECK(n == 1);
  }
  // Order across keys is the submission order too.
  const auto reqs = pd.requests();
  CHECK(json::parse(reqs.front().body)["dedup_key"] == "dev-0");
  CHECK(json::parse(reqs.back().body)["dedup_key"] == "dev-" + std::to_string(kKeys - 1));
}

TEST_CASE("a second restart after a clean delivery resends nothing") {
  presence::test::TempDir dir;
  const std::string outbox = dir.file("outbox.log");
  MockHttpServer pd;
  pd.set_default({202, "{}"});
  {
    auto d = restart(outbox, pd.url("/v2/enqueue"));
    d->submit({presence::test::intent("x")});
    REQUIRE(d->wait_idle(10s));
  }
  auto d = restart(outbox, pd.url("/v2/enqueue"));
  CHECK(d->stats().outbox.loaded == 0);
  CHECK_FALSE(pd.wait_for_count(2, 200ms));
}
