// Issue 18 payloads, field by field: Alertmanager alerts (presence/alert/alertmanager.h), the
// Teams Adaptive Card (teams.h), PagerDuty change events (pagerduty_change.h), dashboard links.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "presence/alert/alertmanager.h"
#include "presence/alert/dashboard_link.h"
#include "presence/alert/pagerduty_change.h"
#include "presence/alert/payload.h"
#include "presence/alert/teams.h"

using namespace presence;
using namespace presence::alert;
using json = nlohmann::json;
using Action = core::AlertIntent::Action;
using Type = core::AlertIntent::Type;

namespace {

OutboxEntry entry(core::AlertIntent i, std::int64_t wall_ms = 1'764'000'000'000) {
  OutboxEntry e;
  e.seq = 1;
  e.sink = "s";
  e.intent = std::move(i);
  e.wall_ms = wall_ms;
  return e;
}

core::AlertIntent device(Action a = Action::Trigger) {
  core::AlertIntent i;
  i.action = a;
  i.type = Type::DeviceOffline;
  i.severity = core::Severity::Warning;
  i.dedup_key = "presence/device/cam/7";
  i.component = "cam/7";
  i.group = "route0";
  i.summary = "device cam/7 is offline";
  i.details = {{"site", "site-b"}, {"broker-node", "n1"}, {"severity", "fake"}};
  return i;
}

}  // namespace

TEST_CASE("alertmanager: endpoint and label names") {
  CHECK(alertmanager_endpoint("http://am:9093") == "http://am:9093/api/v2/alerts");
  CHECK(alertmanager_endpoint("http://am:9093/") == "http://am:9093/api/v2/alerts");
  CHECK(alertmanager_endpoint("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts");
  CHECK(alertmanager_endpoint("http://gw/am") == "http://gw/am/api/v2/alerts");
  CHECK(alertmanager_label_name("site") == "site");
  CHECK(alertmanager_label_name("broker-node") == "broker_node");
  CHECK(alertmanager_label_name("9lives") == "_lives");
  CHECK(alertmanager_label_name("") == "_");
}

TEST_CASE("alertmanager: a device alert's labels, annotations, times and generatorURL") {
  const AmAlert a = alertmanager_alert(entry(device()), "http://d:8080", std::chrono::minutes(5));
  CHECK(a.labels.at("alertname") == "device_offline");
  CHECK(a.labels.at("severity") == "warning");  // ours, not the device label called "severity"
  CHECK(a.labels.at("device") == "cam/7");
  CHECK(a.labels.at("site") == "site-b");
  CHECK(a.labels.at("broker_node") == "n1");
  CHECK(a.labels.at("route") == "route0");
  CHECK(a.labels.at("dedup_key") == "presence/device/cam/7");
  CHECK(a.labels.at("source") == "presenced");
  CHECK(a.labels.count("scope") == 0);
  CHECK(a.annotations.at("summary") == "device cam/7 is offline");
  CHECK(a.starts_ms == 1'764'000'000'000);
  CHECK(a.ends_ms == 0);  // firing: no endsAt, re-sent instead
  CHECK(a.generator_url == "http://d:8080/#device=cam%2F7");
  const json body = json::parse(alertmanager_body({a}));
  REQUIRE(body.is_array());
  CHECK(body[0]["startsAt"] == "2025-11-24T16:00:00.000Z");
  CHECK_FALSE(body[0].contains("endsAt"));

  const AmAlert r = alertmanager_alert(entry(device(Action::Resolve), 1'764'000'060'000), "", std::chrono::minutes(5));
  CHECK(r.ends_ms == 1'764'000'060'000);
  CHECK(r.generator_url.empty());  // no dashboard_url, no link
}

TEST_CASE("alertmanager: incident scope becomes a label; Notify is a short info alert") {
  core::AlertIntent i;
  i.type = Type::FleetIncident;
  i.severity = core::Severity::Critical;
  i.dedup_key = "presence/incident/3";
  i.component = "site=site-b";
  i.details = {{"count", "18"}, {"incident", "3"}, {"scope", "site=site-b"},
               {"cohort_1", "firmware=2.4.1 support=18 lift=1.60"},
               {"cohort_2", "model=x support=9 lift=1.20"}};
  const AmAlert a = alertmanager_alert(entry(i), "http://d/", std::chrono::minutes(5));
  CHECK(a.labels.at("alertname") == "fleet_incident");
  CHECK(a.labels.at("scope") == "site=site-b");
  CHECK(a.labels.at("site") == "site-b");
  CHECK(a.labels.count("count") == 0);  // details are annotations, not labels
  CHECK(a.annotations.at("count") == "18");
  CHECK(a.annotations.at("cohort") ==
        "firmware=2.4.1 support=18 lift=1.60; model=x support=9 lift=1.20");
  CHECK(a.generator_url == "http://d/#incident=3");

  i.action = Action::Notify;
  i.cls = "broker_restart";
  const AmAlert n = alertmanager_alert(entry(i), "", std::chrono::minutes(5));
  CHECK(n.labels.at("alertname") == "presenced_note");  // never matches fleet_incident rules
  CHECK(n.labels.at("note") == "broker_restart");
  CHECK(n.labels.at("severity") == "info");
  CHECK(n.ends_ms - n.starts_ms == 300'000);
}

TEST_CASE("dashboard links: device, incident (also from a bare resolve's key), else the dashboard") {
  core::AlertIntent i;
  i.type = Type::FleetIncident;
  i.dedup_key = "presence/incident/12";
  CHECK(dashboard_link("http://d", i) == "http://d/#incident=12");
  i.dedup_key = "presence/stragglers/4";
  i.type = Type::Stragglers;
  CHECK(dashboard_link("http://d", i) == "http://d/#incident=4");
  i.dedup_key = "presence/group/2";
  i.type = Type::DeviceGroup;
  CHECK(dashboard_link("http://d", i) == "http://d/");
  CHECK(dashboard_link("", i).empty());
  CHECK(url_encode("a b#c/d~") == "a%20b%23c%2Fd~");
}

TEST_CASE("teams: a device card, escaped and complete") {
  auto i = device();
  i.summary = "device \"cam/7\" is offline <b>";
  const json m = json::parse(teams_body(entry(i), "http://d"));
  CHECK(m["type"] == "message");
  const json& c = m["attachments"][0]["content"];
  CHECK(m["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive");
  CHECK(c["type"] == "AdaptiveCard");
  CHECK(c["version"] == "1.4");
  CHECK(c["body"][0]["text"] == "TRIGGERED: device_offline (cam/7)");
  CHECK(c["body"][0]["color"] == "Warning");
  CHECK(c["body"][1]["text"] == "device \"cam/7\" is offline <b>");
  std::map<std::string, std::string> facts;
  for (const auto& f : c["body"][2]["facts"]) facts[f["title"].get<std::string>()] = f["value"].get<std::string>();
  CHECK(facts.at("Scope") == "cam/7");
  CHECK(facts.at("Since") == "2025-11-24T16:00:00.000Z");
  CHECK(facts.at("Count") == "1");
  CHECK(facts.at("Cause") == "device offline");
  CHECK(facts.at("Route") == "route0");
  CHECK(c["actions"][0]["url"] == "http://d/#device=cam%2F7");
}

TEST_CASE("pagerduty change event: summary cut to 1024 characters, details, no link without a dashboard") {
  core::AlertIntent i;
  i.action = Action::Notify;
  i.cls = "silence_started";
  i.summary = std::string(3000, 'x');
  i.details = {{"silence", "4"}};
  PagerDutyChangeConfig c;
  c.routing_key = "k";
  const json j = json::parse(pagerduty_change_body(c, entry(i)));
  CHECK(j["routing_key"] == "k");
  CHECK(j["payload"]["source"] == "presenced");
  CHECK(j["payload"]["summary"].get<std::string>().size() <= 1024 * 3);
  CHECK(j["payload"]["summary"].get<std::string>().rfind("xxx", 0) == 0);
  CHECK(j["payload"]["custom_details"]["silence"] == "4");
  CHECK(j["payload"]["custom_details"]["event"] == "silence_started");
  CHECK(j["payload"]["timestamp"] == "2025-11-24T16:00:00.000Z");
  CHECK_FALSE(j.contains("links"));
  CHECK_FALSE(j.contains("event_action"));
}

TEST_CASE("slack: a Notify is a NOTICE with its kind, never TRIGGERED") {
  core::AlertIntent i;
  i.action = Action::Notify;
  i.type = Type::FleetIncident;
  i.severity = core::Severity::Info;
  i.cls = "broker_restart";
  i.summary = "Broker restart detected";
  const std::string body = slack_body(entry(i));
  CHECK(body.find("NOTICE info broker_restart") != std::string::npos);
  CHECK(body.find("TRIGGERED") == std::string::npos);
}
