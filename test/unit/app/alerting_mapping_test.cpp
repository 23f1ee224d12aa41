// Config -> core mapping (presence/app/alerting.h): one value per default, routes, sinks.
#include <doctest/doctest.h>

#include <map>

#include "presence/app/alerting.h"

namespace presence::app {

TEST_CASE("alerts.policy defaults are the core's: one value each") {
  const Config c;
  const auto p = policy_config(c);
  const auto f = fleet_config(c);
  const core::PolicyConfig cp;
  const core::FleetConfig cf;
  CHECK(p.alert_after == cp.alert_after);
  CHECK(p.group_wait == cp.group_wait);
  CHECK(p.group_interval == cp.group_interval);
  CHECK(p.blind_alert_after == cp.blind_alert_after);
  CHECK(f.incident_window == cf.incident_window);
  CHECK(f.incident_stable_for == cf.incident_stable_for);
  CHECK(f.straggler_grace == cf.straggler_grace);
  CHECK(f.defaults.incident_open_floor == cf.defaults.incident_open_floor);
  CHECK(f.defaults.incident_open_fraction == cf.defaults.incident_open_fraction);
  CHECK(f.defaults.incident_close_fraction == cf.defaults.incident_close_fraction);
  CHECK(f.defaults.incident_recovered_share == cf.defaults.incident_recovered_share);
  CHECK(f.defaults.storm_open_floor == cf.defaults.storm_open_floor);
  CHECK(f.defaults.storm_open_fraction == cf.defaults.storm_open_fraction);
  CHECK(f.defaults.storm_open_factor == cf.defaults.storm_open_factor);
  CHECK(f.defaults.storm_flapping_floor == cf.defaults.storm_flapping_floor);
  CHECK(f.defaults.storm_flapping_fraction == cf.defaults.storm_flapping_fraction);
  CHECK(p.details_max_devices == cp.details_max_devices);
  CHECK(core::validate(p).empty());
  CHECK(core::validate(f).empty());
}

TEST_CASE("the storm, recovery and details keys reach the core") {
  Config c;
  auto& a = c.alerts.policy;
  a.incident_recovered_share = 0.8;
  a.storm_open_floor = 7;
  a.storm_open_fraction = 0.2;
  a.storm_open_factor = 3;
  a.storm_flapping_floor = 4;
  a.storm_flapping_fraction = 0.3;
  a.details_max_devices = 1000;
  const auto p = policy_config(c);
  const auto f = fleet_config(c);
  CHECK(f.defaults.incident_recovered_share == 0.8);
  CHECK(f.defaults.storm_open_floor == 7);
  CHECK(f.defaults.storm_open_fraction == 0.2);
  CHECK(f.defaults.storm_open_factor == 3.0);
  CHECK(f.defaults.storm_flapping_floor == 4);
  CHECK(f.defaults.storm_flapping_fraction == 0.3);
  CHECK(p.details_max_devices == 1000);
  CHECK(core::validate(p).empty());
  CHECK(core::validate(f).empty());
}

TEST_CASE("small test windows still give a valid fleet config") {
  Config c;
  c.alerts.policy.incident_window = std::chrono::milliseconds(500);
  c.alerts.policy.incident_open_fraction = 0.04;
  const auto f = fleet_config(c);
  CHECK(f.window_resolution <= f.incident_window);
  CHECK(f.defaults.incident_close_fraction < f.defaults.incident_open_fraction);
  CHECK(core::validate(f).empty());
}

TEST_CASE("routes become rules; a route with its own key gets its own sink") {
  Config c;
  c.alerts.pagerduty.enabled = true;
  c.alerts.pagerduty.routing_key = std::string(32, 'a');
  c.alerts.slack.enabled = true;
  c.alerts.slack.webhook_url = "http://127.0.0.1:1/hook";
  c.alerts.slack.max_per_second = 2;
  AlertRouteConfig berlin;
  berlin.match = {{"site", "berlin"}};
  berlin.severity = "critical";
  berlin.pagerduty_routing_key = std::string(32, 'b');
  AlertRouteConfig rest;
  rest.severity = "warning";
  c.alerts.routes = {berlin, rest};
  const auto p = policy_config(c);
  REQUIRE(p.rules.size() == 2);
  CHECK(p.rules[0].route == "route0");
  CHECK(p.rules[0].severity == core::Severity::Critical);
  CHECK(p.rules[0].match == std::vector<core::LabelMatch>{{"site", "berlin"}});
  CHECK(p.rules[1].severity == core::Severity::Warning);
  CHECK(p.rules[1].match.empty());

  const auto sinks = make_sinks(c);
  std::vector<std::string> names;
  for (const auto& s : sinks) names.push_back(s->config().name);
  CHECK(names == std::vector<std::string>{"pagerduty-route0", "pagerduty", "slack"});
  core::AlertIntent in_berlin, in_rest;
  in_berlin.group = "route0";
  in_rest.group = "route1";
  CHECK(sinks[0]->config().accepts(in_berlin));
  CHECK_FALSE(sinks[0]->config().accepts(in_rest));
  CHECK_FALSE(sinks[1]->config().accepts(in_berlin));
  CHECK(sinks[1]->config().accepts(in_rest));
  CHECK(sinks[2]->config().accepts(in_berlin));  // no route-specific Slack: default webhook
  CHECK(sinks[2]->min_interval() == std::chrono::milliseconds(500));  // 1 / max_per_second
}

TEST_CASE("alerts.enabled false or nothing enabled: no sink") {
  Config c;
  CHECK(make_sinks(c).empty());
  c.alerts.pagerduty.enabled = true;
  c.alerts.enabled = false;
  CHECK(make_sinks(c).empty());
}

TEST_CASE("store paths") {
  Config c;
  c.store.dir = "/x";
  CHECK(outbox_path(c) == "/x/outbox.log");
  CHECK(snapshot_path(c) == "/x/snapshot.bin");
}

TEST_CASE("issue 18 sinks: names, endpoints, Notify only to change events, PagerDuty rate limit") {
  Config c;
  c.store.dir = "/nonexistent-presenced-test";  // the Alertmanager state file is only read
  c.alerts.pagerduty.enabled = true;
  c.alerts.pagerduty.routing_key = std::string(32, 'k');
  c.alerts.pagerduty.change_events = true;
  c.alerts.pagerduty.rate_limit_events = 50;
  c.alerts.pagerduty.rate_limit_window = std::chrono::seconds(30);
  c.alerts.alertmanager.enabled = true;
  c.alerts.alertmanager.urls = {"http://am0:9093", "http://am1:9093/"};
  c.alerts.teams.enabled = true;
  c.alerts.teams.webhook_url = "https://example.com/workflows/x";
  c.alerts.teams.max_per_second = 2;
  AlertRouteConfig route;
  route.match = {{"site", "b"}};
  route.pagerduty_routing_key = std::string(32, 'r');
  c.alerts.routes.push_back(route);
  const auto sinks = make_sinks(c);
  std::map<std::string, const alert::Sink*> by;
  for (const auto& s : sinks) by[s->config().name] = s.get();
  REQUIRE(by.size() == 6);
  CHECK(by.at("alertmanager")->config().url == "http://am0:9093/api/v2/alerts");
  CHECK(by.at("alertmanager-2")->config().url == "http://am1:9093/api/v2/alerts");
  CHECK(by.at("pagerduty-change")->config().url == "https://events.pagerduty.com/v2/change/enqueue");
  CHECK(by.at("teams")->min_interval() == std::chrono::milliseconds(500));
  for (const char* pd : {"pagerduty", "pagerduty-route0"}) {
    CHECK(by.at(pd)->config().rate_limit.max_requests == 50);
    CHECK(by.at(pd)->config().rate_limit.window == std::chrono::seconds(30));
  }

  core::AlertIntent page;
  page.action = core::AlertIntent::Action::Trigger;
  core::AlertIntent note = page;
  note.action = core::AlertIntent::Action::Notify;
  // Notify is context: never to the Events API (it would page; the sink refuses it and the
  // dispatcher counts it as skipped), only to change events there.
  CHECK(by.at("pagerduty")->config().accepts(page));
  CHECK(by.at("pagerduty")->wants(page));
  CHECK_FALSE(by.at("pagerduty")->wants(note));
  CHECK_FALSE(by.at("pagerduty-change")->config().accepts(page));
  CHECK(by.at("pagerduty-change")->config().accepts(note));
  core::AlertIntent routed_note = note;
  routed_note.group = "route0";
  CHECK_FALSE(by.at("pagerduty-route0")->wants(routed_note));
  // Teams and Alertmanager take everything.
  CHECK_FALSE(by.at("teams")->config().accepts);
  CHECK_FALSE(by.at("alertmanager")->config().accepts);
}

}  // namespace presence::app
