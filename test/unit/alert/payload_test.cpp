#include "presence/alert/payload.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "presence/alert/sink.h"

using namespace presence;
using namespace presence::alert;
using json = nlohmann::json;
using Action = core::AlertIntent::Action;
using Type = core::AlertIntent::Type;

namespace {

OutboxEntry entry(Action action = Action::Trigger) {
  OutboxEntry e;
  e.seq = 42;
  e.sink = "pagerduty";
  e.wall_ms = 1'700'000'000'123;  // 2023-11-14T22:13:20.123Z
  auto& i = e.intent;
  i.action = action;
  i.type = Type::DeviceOffline;
  i.severity = core::Severity::Critical;
  i.dedup_key = "presenced/device_offline/dev-7";
  i.summary = "dev-7 offline for 30s (last will)";
  i.component = "dev-7";
  i.group = "site-a";
  i.cls = "device_offline";
  i.details = {{"reason", "last_will"}, {"site", "site-a"}};
  return e;
}

std::size_t code_points(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

TEST_CASE("wire names are the documented PagerDuty words") {
  CHECK(std::string(wire_name(core::Severity::Critical)) == "critical");
  CHECK(std::string(wire_name(core::Severity::Error)) == "error");
  CHECK(std::string(wire_name(core::Severity::Warning)) == "warning");
  CHECK(std::string(wire_name(core::Severity::Info)) == "info");
  CHECK(std::string(wire_name(Action::Trigger)) == "trigger");
  CHECK(std::string(wire_name(Action::Resolve)) == "resolve");
  CHECK(std::string(wire_name(Type::FleetIncident)) == "fleet_incident");
  CHECK(std::string(wire_name(Type::Blind)) == "blind");
}

TEST_CASE("iso8601_utc") {
  CHECK(iso8601_utc(0) == "1970-01-01T00:00:00.000Z");
  CHECK(iso8601_utc(1'700'000'000'123) == "2023-11-14T22:13:20.123Z");
  CHECK(iso8601_utc(-1) == "1969-12-31T23:59:59.999Z");
}

TEST_CASE("truncate_utf8 at the 1024 boundary: T-1, T, T+1") {
  CHECK(truncate_utf8(std::string(1023, 'a'), 1024) == std::string(1023, 'a'));
  CHECK(truncate_utf8(std::string(1024, 'a'), 1024) == std::string(1024, 'a'));
  const std::string cut = truncate_utf8(std::string(1025, 'a'), 1024);
  CHECK(code_points(cut) == 1024);
  CHECK(cut == std::string(1023, 'a') + "\xE2\x80\xA6");
  // Multi-byte characters are never split: 1025 x "é" (2 bytes each).
  std::string accents;
  for (int k = 0; k < 1025; ++k) accents += "\xC3\xA9";
  const std::string a = truncate_utf8(accents, 1024);
  CHECK(code_points(a) == 1024);
  CHECK(a.substr(0, 2046) == accents.substr(0, 2046));
  // Invalid bytes count as one character each and never crash.
  CHECK(truncate_utf8("\xff\xfe\xfd", 2) == "\xff\xE2\x80\xA6");
  CHECK(truncate_utf8("abc", 0).empty());
  CHECK(truncate_utf8("abc", 1) == "\xE2\x80\xA6");
}

TEST_CASE("pagerduty_dedup_key: <= 255 unchanged, longer hashed to exactly 255, stable, distinct") {
  CHECK(pagerduty_dedup_key(std::string(254, 'k')) == std::string(254, 'k'));
  CHECK(pagerduty_dedup_key(std::string(255, 'k')) == std::string(255, 'k'));
  const std::string long1 = std::string(255, 'k') + "1";
  const std::string long2 = std::string(255, 'k') + "2";
  const std::string k1 = pagerduty_dedup_key(long1);
  CHECK(k1.size() == 255);
  CHECK(k1 == pagerduty_dedup_key(long1));
  CHECK(k1 != pagerduty_dedup_key(long2));
  CHECK(k1.substr(0, 238) == std::string(238, 'k'));
  CHECK(k1[238] == '~');
  // A multi-byte character straddling the cut is not split.
  std::string wide;
  for (int k = 0; k < 200; ++k) wide += "\xC3\xA9";
  const std::string w = pagerduty_dedup_key(wide);
  CHECK(w.size() <= 255);
  CHECK(code_points(w.substr(0, w.find('~'))) * 2 == w.find('~'));
}

TEST_CASE("HMAC-SHA256 matches RFC 4231 test case 2") {
  CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(webhook_signature("Jefe", "what do ya want for nothing?") ==
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("PagerDuty trigger carries exactly the Events API v2 fields") {
  const json j = json::parse(pagerduty_body({"R0UTINGKEY", "presenced-host"}, entry()));
  CHECK(j["routing_key"] == "R0UTINGKEY");
  CHECK(j["event_action"] == "trigger");
  CHECK(j["dedup_key"] == "presenced/device_offline/dev-7");
  const json& p = j["payload"];
  CHECK(p["summary"] == "dev-7 offline for 30s (last will)");
  CHECK(p["source"] == "presenced-host");
  CHECK(p["severity"] == "critical");
  CHECK(p["timestamp"] == "2023-11-14T22:13:20.123Z");
  CHECK(p["component"] == "dev-7");
  CHECK(p["group"] == "site-a");
  CHECK(p["class"] == "device_offline");
  CHECK(p["custom_details"]["reason"] == "last_will");
  CHECK(p["custom_details"]["alert_type"] == "device_offline");
  const std::set<std::string> documented{"summary",   "source", "severity", "timestamp",
                                         "component", "group",  "class",    "custom_details"};
  for (const auto& [k, v] : p.items()) CHECK(documented.count(k) == 1);
  CHECK(p.size() == documented.size());
  const std::set<std::string> top{"routing_key", "event_action", "dedup_key", "payload", "client"};
  for (const auto& [k, v] : j.items()) CHECK(top.count(k) == 1);
}

TEST_CASE("PagerDuty trigger: long summary and key truncated, empty optionals left out") {
  OutboxEntry e = entry();
  e.intent.summary = std::string(5000, 's');
  e.intent.dedup_key = std::string(400, 'd');
  e.intent.component.clear();
  e.intent.group.clear();
  e.intent.cls.clear();
  e.intent.summary += "\xff";  // invalid UTF-8 from a device id never throws
  const json j = json::parse(pagerduty_body({"rk", ""}, e));
  CHECK(code_points(j["payload"]["summary"].get<std::string>()) == kPagerDutySummaryMax);
  CHECK(j["dedup_key"].get<std::string>().size() == kPagerDutyDedupKeyMax);
  CHECK(j["payload"]["custom_details"]["dedup_key_full"] == std::string(400, 'd'));
  CHECK(j["payload"]["source"] == "presenced");
  CHECK_FALSE(j["payload"].contains("component"));
  CHECK_FALSE(j["payload"].contains("group"));
  CHECK_FALSE(j["payload"].contains("class"));
}

TEST_CASE("PagerDuty resolve sends only routing_key, event_action, dedup_key") {
  const json j = json::parse(pagerduty_body({"rk", "src"}, entry(Action::Resolve)));
  CHECK(j.size() == 3);
  CHECK(j["routing_key"] == "rk");
  CHECK(j["event_action"] == "resolve");
  CHECK(j["dedup_key"] == "presenced/device_offline/dev-7");
}

TEST_CASE("Slack message has a text fallback and blocks, with mrkdwn escaped") {
  OutboxEntry e = entry();
  e.intent.summary = "a <b> & c";
  const json j = json::parse(slack_body(e));
  CHECK(j["text"] == "TRIGGERED critical device_offline: a <b> & c");
  REQUIRE(j["blocks"].is_array());
  REQUIRE(j["blocks"].size() == 3);
  CHECK(j["blocks"][0]["type"] == "section");
  const std::string main = j["blocks"][0]["text"]["text"];
  CHECK(main.find("a &lt;b&gt; &amp; c") != std::string::npos);
  CHECK(j["blocks"][0]["text"]["type"] == "mrkdwn");
  CHECK(j["blocks"][1]["fields"].size() == 5);  // component, group, class, 2 details
  CHECK(j["blocks"][2]["type"] == "context");
  const json r = json::parse(slack_body(entry(Action::Resolve)));
  CHECK(r["text"].get<std::string>().rfind("RESOLVED", 0) == 0);
}

TEST_CASE("Slack summary counts the burst and lists the first few") {
  std::vector<OutboxEntry> burst;
  for (int k = 0; k < 12; ++k) {
    OutboxEntry e = entry(k % 3 == 2 ? Action::Resolve : Action::Trigger);
    e.intent.summary = "dev-" + std::to_string(k);
    if (k == 0) e.intent.type = Type::FleetIncident;
    burst.push_back(e);
  }
  const json j = json::parse(slack_summary_body(burst, 5));
  const std::string text = j["text"];
  CHECK(text.find("12 alerts (8 triggered, 4 resolved)") != std::string::npos);
  CHECK(text.find("device_offline: 11") != std::string::npos);
  CHECK(text.find("fleet_incident: 1") != std::string::npos);
  const std::string list = j["blocks"][1]["text"]["text"];
  CHECK(list.find("dev-4") != std::string::npos);
  CHECK(list.find("dev-5") == std::string::npos);
  CHECK(list.find("and 7 more") != std::string::npos);
}

TEST_CASE("webhook body is the versioned intent; the signature verifies") {
  const std::string body = webhook_body(entry());
  const json j = json::parse(body);
  CHECK(j["v"] == 1);
  CHECK(j["seq"] == 42);
  CHECK(j["action"] == "trigger");
  CHECK(j["type"] == "device_offline");
  CHECK(j["severity"] == "critical");
  CHECK(j["dedup_key"] == "presenced/device_offline/dev-7");
  CHECK(j["summary"] == "dev-7 offline for 30s (last will)");
  CHECK(j["component"] == "dev-7");
  CHECK(j["group"] == "site-a");
  CHECK(j["class"] == "device_offline");
  CHECK(j["details"]["reason"] == "last_will");
  CHECK(j["timestamp"] == "2023-11-14T22:13:20.123Z");

  WebhookConfig c;
  c.sink.url = "http://127.0.0.1:1/hook";
  c.secret = "s3cret";
  const auto sink = make_webhook_sink(c);
  const HttpRequest req = sink->build({entry()});
  CHECK(req.body == body);
  CHECK(std::find(req.headers.begin(), req.headers.end(),
                  "X-Presence-Signature: sha256=" + hmac_sha256_hex("s3cret", body)) !=
        req.headers.end());
}

TEST_CASE("classify_http: 2xx delivered, 4xx dead-letter except 408/429, rest retry") {
  auto v = [](long status) {
    HttpResponse r;
    r.status = status;
    return classify_http(r);
  };
  CHECK(v(199) == DeliveryOutcome::Retry);
  CHECK(v(200) == DeliveryOutcome::Delivered);
  CHECK(v(202) == DeliveryOutcome::Delivered);
  CHECK(v(299) == DeliveryOutcome::Delivered);
  CHECK(v(300) == DeliveryOutcome::Retry);
  CHECK(v(399) == DeliveryOutcome::Retry);
  CHECK(v(400) == DeliveryOutcome::DeadLetter);
  CHECK(v(404) == DeliveryOutcome::DeadLetter);
  CHECK(v(408) == DeliveryOutcome::Retry);
  CHECK(v(429) == DeliveryOutcome::Retry);
  CHECK(v(499) == DeliveryOutcome::DeadLetter);
  CHECK(v(500) == DeliveryOutcome::Retry);
  CHECK(v(503) == DeliveryOutcome::Retry);
  CHECK(v(0) == DeliveryOutcome::Retry);  // network error / timeout
}

TEST_CASE("Slack batches only above summary_threshold (T-1, T, T+1)") {
  SlackConfig c;
  c.sink.url = "http://127.0.0.1:1/slack";
  c.summary_threshold = 10;
  c.summary_max = 50;
  const auto sink = make_slack_sink(c);
  CHECK(sink->batch_size(9) == 1);
  CHECK(sink->batch_size(10) == 1);
  CHECK(sink->batch_size(11) == 11);
  CHECK(sink->batch_size(500) == 50);
  CHECK(sink->min_interval() == std::chrono::seconds(1));
}

TEST_CASE("clamp_intent keeps every request under PagerDuty's 512 KB and marks what it cut") {
  core::AlertIntent small = entry().intent;
  core::AlertIntent copy = small;
  CHECK_FALSE(clamp_intent(copy));
  CHECK(copy.details == small.details);

  core::AlertIntent big = entry().intent;
  big.summary = std::string(kMaxSummaryBytes, 's');  // T: exactly at the limit, untouched
  CHECK_FALSE(clamp_intent(big));
  big.summary += "s";  // T+1
  for (int k = 0; k < 5000; ++k)
    big.details.emplace_back("d" + std::to_string(k), std::string(100'000, 'v'));
  CHECK(clamp_intent(big));
  CHECK(big.summary.size() <= kMaxSummaryBytes);
  CHECK(big.details.size() == kMaxDetails);
  CHECK(big.details.back().first == "presenced_truncated");
  for (const auto& [k, v] : big.details) CHECK(v.size() <= kMaxDetailValue);
  // The device list of a group/straggler alert may be long, cut only after a whole id.
  std::string ids;
  for (int k = 0; ids.size() <= kMaxDeviceListBytes; ++k) ids += (k ? "," : "") + ("dev-" + std::to_string(k));
  big.details.insert(big.details.begin(), {"devices", ids});
  CHECK(clamp_intent(big));
  const std::string& cut = big.details.front().second;
  CHECK(cut.size() <= kMaxDeviceListBytes);
  CHECK(cut.size() > kMaxDeviceListBytes - 16);
  CHECK(cut.substr(cut.size() - 4) == ",\xE2\x80\xA6");
  CHECK(ids.compare(0, cut.size() - 4, cut, 0, cut.size() - 4) == 0);  // a prefix of whole ids
  CHECK(ids[cut.size() - 4] == ',');
  core::AlertIntent fits = entry().intent;
  fits.details.emplace_back("devices", std::string(kMaxDeviceListBytes, 'd'));  // T: untouched
  CHECK_FALSE(clamp_intent(fits));
  OutboxEntry e = entry();
  e.intent = big;
  CHECK(pagerduty_body({"rk", "src"}, e).size() < 512 * 1024);
  CHECK(webhook_body(e).size() < 512 * 1024);
  CHECK(slack_body(e).size() < 512 * 1024);
}

// Issue 11: a Notify is context, never a page. PagerDuty does not take it (the sink does not
// want it: the dispatcher counts it as skipped); Slack and the webhook render it as an info notice.
TEST_CASE("Notify: not for PagerDuty, an info notice on Slack and the webhook") {
  CHECK(std::string(wire_name(Action::Notify)) == "notify");
  OutboxEntry e = entry(Action::Notify);
  e.intent.type = Type::FleetIncident;
  e.intent.severity = core::Severity::Info;
  e.intent.cls = "fleet_incident";  // the policy's class for a drop notice (alert_class)
  e.intent.summary = "Blip in site=site-b: 18 devices dropped, 18 were back within 1.0 s; not paged";
  PagerDutyConfig pc;
  pc.routing_key = "rk";
  const auto pd = make_pagerduty_sink(pc);
  CHECK_FALSE(pd->wants(e.intent));
  CHECK(pd->wants(entry(Action::Trigger).intent));
  CHECK(pd->wants(entry(Action::Resolve).intent));
  SlackConfig sc;
  sc.sink.url = "http://127.0.0.1:9/";
  CHECK(make_slack_sink(sc)->wants(e.intent));
  const json s = json::parse(slack_body(e));
  const std::string text = s["text"];
  CHECK(text.rfind(":information_source: NOTICE info fleet_incident: Blip in site=site-b", 0) == 0);
  CHECK(s["blocks"][0]["text"]["text"].get<std::string>().rfind(":information_source: *NOTICE", 0) == 0);
  const json w = json::parse(webhook_body(e));
  CHECK(w["action"] == "notify");
  CHECK(w["severity"] == "info");
}
