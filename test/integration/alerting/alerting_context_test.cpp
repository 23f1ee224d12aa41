// Context that is not a page (issue 18), end to end: a real mosquitto and presenced; a mock
// PagerDuty Events API (which must see no request at all: none of this pages) and a mock change
// events endpoint that checks the change-event schema. presenced notes a maintenance silence
// starting and ending, a broker restart, and its own restart.
#include <doctest/doctest.h>

#include "presence/common/iso8601.h"
#include "test/integration/alerting/harness.h"

using namespace presence::atest;
using json = nlohmann::json;

namespace {

// What PagerDuty's change-event endpoint requires; "" = valid.
std::string change_problem(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "not JSON";
  if (j.value("routing_key", "") != kRoutingKey) return "routing_key";
  if (j.contains("event_action") || j.contains("dedup_key")) return "alert-event fields";
  if (!j.contains("payload") || !j["payload"].is_object()) return "payload";
  const json& p = j["payload"];
  const std::string summary = p.value("summary", "");
  if (summary.empty() || summary.size() > 1024) return "payload.summary";
  if (p.value("source", "").empty()) return "payload.source";
  static const std::regex kIso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z)");
  if (!std::regex_match(p.value("timestamp", ""), kIso)) return "payload.timestamp";
  if (!p.contains("custom_details") || !p["custom_details"].is_object()) return "custom_details";
  return "";
}

}  // namespace

TEST_CASE("context notes: silence started/ended, broker restart, presenced restart as change events; no page") {
  presence::test::Mosquitto broker;
  broker.start();
  MockPagerDuty pd;
  presence::test::MockHttpServer change;
  std::mutex mu;
  std::vector<std::string> problems;
  std::vector<json> notes;
  change.set_handler([&](const presence::test::RecordedRequest& r) {
    std::lock_guard lock(mu);
    const std::string p = change_problem(r.body);
    if (!p.empty()) {
      problems.push_back(p + ": " + r.body);
      return presence::test::MockResponse(400, p);
    }
    notes.push_back(json::parse(r.body));
    return presence::test::MockResponse(202, R"({"status":"success"})");
  });
  auto events = [&] {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    for (const auto& n : notes) out.push_back(n["payload"]["custom_details"].value("event", ""));
    return out;
  };
  auto has = [&](const std::string& e) {
    for (const auto& x : events())
      if (x == e) return true;
    return false;
  };

  // A maintenance window from 2 s to 4 s after start-up, from the config file.
  const auto now = std::chrono::system_clock::now();
  PresencedOptions o;
  o.pagerduty_extra += "    change_events: true\n    change_url: " + change.url("/v2/change/enqueue") + "\n";
  o.extra = "  dashboard_url: http://presenced.example\n  silences:\n    - match: {site: site-a}\n" +
            std::string("      starts: ") + presence::common::iso8601_utc_ms(now + std::chrono::seconds(2)) +
            "\n      ends: " + presence::common::iso8601_utc_ms(now + std::chrono::seconds(4)) +
            "\n      comment: switch firmware\n";
  Presenced p(broker.port(), pd.url(), o);
  p.start();

  CHECK(wait_for([&] { return has("silence_started"); }, 15s));
  CHECK(wait_for([&] { return has("silence_ended"); }, 15s));

  broker.restart();
  CHECK(wait_for([&] { return has("broker_restart"); }, 15s));

  REQUIRE(p.stop() == 0);
  p.start();
  CHECK(wait_for([&] { return has("presenced_restart"); }, 15s));
  p.stop();

  {
    std::lock_guard lock(mu);
    for (const auto& pr : problems) FAIL_CHECK(pr);
    for (const auto& n : notes) {
      INFO(n.dump());
      const std::string e = n["payload"]["custom_details"].value("event", "");
      if (e == "silence_started")
        CHECK(n["payload"]["summary"].get<std::string>().find("site=site-a (config: switch firmware)") != std::string::npos);
      CHECK(n["links"][0]["href"] == "http://presenced.example/");
    }
  }
  // None of it paged: the Events API saw nothing (a Notify there would have been a trigger).
  CHECK(pd.requests() == 0);
  CHECK(pd.errors().empty());
  INFO(p.log());
  CHECK(p.log().find("alert: note broker_restart") != std::string::npos);
}
