// presenced's alerts in a real Prometheus Alertmanager (issue 18, "Must show"): Debian's
// prometheus-alertmanager on a free loopback port with its own config and storage dir, stopped by
// pid. The alerts go through the dispatcher (durable outbox) and the Alertmanager sink exactly as
// presenced sends them; the intents are shaped like the policy's (docs/alert-policy.md): a
// device trigger carries the device's labels, its resolve only the id and a summary, an incident
// resolve only its dedup_key.
#include <doctest/doctest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "presence/alert/alertmanager.h"
#include "presence/alert/dispatcher.h"
#include "test/integration/alert/harness.h"
#include "test/support/process.h"

using namespace presence;
using namespace presence::alert;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Action = core::AlertIntent::Action;
using Type = core::AlertIntent::Type;

namespace {

constexpr auto kWait = std::chrono::milliseconds(20'000);

// resolve_timeout 3 s: a firing alert that is not re-sent lapses within the test.
constexpr const char* kAmConfig = R"(global:
  resolve_timeout: 3s
route:
  receiver: "null"
  group_by: [alertname, site]
receivers:
  - name: "null"
# A fleet incident of a site inhibits that site's device alerts: the on-call gets the incident,
# not one page per device (the same promise presenced's own policy keeps).
inhibit_rules:
  - source_matchers: ['alertname="fleet_incident"', 'source="presenced"']
    target_matchers: ['alertname=~"device_offline|device_flapping"']
    equal: [site]
)";

struct RealAlertmanager {
  presence::test::TempDir dir;
  int port = presence::test::free_tcp_port();
  presence::test::Process proc;

  RealAlertmanager() {
    const std::string config = dir.write("alertmanager.yml", kAmConfig);
    proc = presence::test::Process(
        {"prometheus-alertmanager", "--config.file=" + config, "--storage.path=" + dir.file("data"),
         "--web.listen-address=127.0.0.1:" + std::to_string(port),
         // No gossip: a lone test instance must not bind 0.0.0.0:9094 or look for peers.
         "--cluster.listen-address=", "--log.level=warn"},
        dir.file("alertmanager.log"));
    const bool ready = presence::test::wait_for(
        [&] {
          httplib::Client c("127.0.0.1", port);
          c.set_connection_timeout(1);
          auto r = c.Get("/-/ready");
          return r && r->status == 200;
        },
        kWait, 50ms);
    REQUIRE_MESSAGE(ready, "alertmanager did not start: " << presence::test::read_file(dir.file("alertmanager.log")));
  }
  ~RealAlertmanager() { proc.stop(15, 5000ms); }

  std::string base() const { return "http://127.0.0.1:" + std::to_string(port); }

  // GET /api/v2/alerts: alerts not resolved (active, suppressed by inhibition or silence).
  json alerts() const {
    httplib::Client c("127.0.0.1", port);
    auto r = c.Get("/api/v2/alerts");
    if (!r || r->status != 200) return json::array();
    return json::parse(r->body, nullptr, false);
  }
  json find(const std::string& dedup_key) const {
    for (const auto& a : alerts())
      if (a["labels"].value("dedup_key", "") == dedup_key) return a;
    return json();
  }
};

core::AlertIntent device_trigger(const std::string& id, const std::string& site) {
  core::AlertIntent i;
  i.action = Action::Trigger;
  i.type = Type::DeviceOffline;
  i.severity = core::Severity::Error;
  i.dedup_key = "presence/device/" + id;
  i.component = id;
  i.cls = "device_offline";
  i.summary = "device " + id + " is offline";
  i.details = {{"site", site}, {"firmware", "2.4.1"}};
  return i;
}

core::AlertIntent device_resolve(const std::string& id) {
  core::AlertIntent i;
  i.action = Action::Resolve;
  i.type = Type::DeviceOffline;
  i.dedup_key = "presence/device/" + id;
  i.component = id;
  i.cls = "device_offline";
  i.summary = "device " + id + " is back online";
  return i;
}

core::AlertIntent incident_trigger(std::uint32_t n, const std::string& site) {
  core::AlertIntent i;
  i.action = Action::Trigger;
  i.type = Type::FleetIncident;
  i.severity = core::Severity::Critical;
  i.dedup_key = "presence/incident/" + std::to_string(n);
  i.component = "site=" + site;
  i.cls = "fleet_incident";
  i.summary = "Fleet incident (partial) in site=" + site + ": 18 dropped of 30 devices (60 %)";
  i.details = {{"count", "18"},        {"population", "30"},
               {"disruption", "partial"}, {"incident", std::to_string(n)},
               {"scope", "site=" + site}, {"cohort_1", "firmware=2.4.1 support=18 lift=1.60"}};
  return i;
}

core::AlertIntent incident_resolve(std::uint32_t n) {
  core::AlertIntent i;
  i.action = Action::Resolve;
  i.type = Type::FleetIncident;
  i.dedup_key = "presence/incident/" + std::to_string(n);
  i.cls = "fleet_incident";
  return i;
}

struct Sender {
  presence::test::TempDir dir;
  presence::test::SafeLogs logs;
  std::unique_ptr<Dispatcher> d;

  // state_dir: where the sinks keep their firing set ("" = this Sender's own temp dir); a second
  // Sender on the same state_dir is presenced after a restart.
  explicit Sender(std::vector<std::string> urls, Duration resend = 500ms, std::string state_dir = "") {
    if (state_dir.empty()) state_dir = dir.path();
    std::vector<std::unique_ptr<Sink>> sinks;
    for (std::size_t i = 0; i < urls.size(); ++i) {
      AlertmanagerConfig c;
      c.sink = presence::test::fast(i == 0 ? "alertmanager" : "alertmanager-" + std::to_string(i + 1),
                                    alertmanager_endpoint(urls[i]));
      c.dashboard_url = "http://presenced.example:8080";
      c.resend_interval = resend;
      c.state_path = state_dir + "/" + c.sink.name + ".json";
      c.log = logs.fn();
      sinks.push_back(make_alertmanager_sink(std::move(c)));
    }
    DispatcherConfig dc;
    dc.outbox.path = dir.file("outbox.log");
    dc.anchor = presence::test::anchor_now();
    dc.log = logs.fn();
    d = std::make_unique<Dispatcher>(dc, std::move(sinks));
    const auto started = d->start();
    REQUIRE_MESSAGE(started.ok(), started.error);
  }
  void send(std::vector<core::AlertIntent> v) {
    d->submit(std::move(v));
    REQUIRE(d->wait_idle(kWait));
  }
};

std::string state_of(const json& a) { return a.is_null() ? "" : a["status"].value("state", ""); }

}  // namespace

TEST_CASE("alertmanager: labels, inhibition by a site's fleet incident, re-send past resolve_timeout, resolve") {
  RealAlertmanager am;
  Sender s({am.base()});

  s.send({device_trigger("dev-b1", "site-b"), device_trigger("dev-a1", "site-a"),
          incident_trigger(7, "site-b")});

  // The device alert arrives with the labels an Alertmanager route or inhibition rule matches on.
  REQUIRE(presence::test::wait_for([&] { return !am.find("presence/device/dev-b1").is_null(); }, kWait));
  const json dev = am.find("presence/device/dev-b1");
  CHECK(dev["labels"]["alertname"] == "device_offline");
  CHECK(dev["labels"]["device"] == "dev-b1");
  CHECK(dev["labels"]["site"] == "site-b");
  CHECK(dev["labels"]["firmware"] == "2.4.1");
  CHECK(dev["labels"]["severity"] == "error");
  CHECK(dev["labels"]["source"] == "presenced");
  CHECK(dev["annotations"]["summary"] == "device dev-b1 is offline");
  CHECK(dev["generatorURL"] == "http://presenced.example:8080/#device=dev-b1");
  const json inc = am.find("presence/incident/7");
  REQUIRE_FALSE(inc.is_null());
  CHECK(inc["labels"]["alertname"] == "fleet_incident");
  CHECK(inc["labels"]["scope"] == "site=site-b");
  CHECK(inc["labels"]["site"] == "site-b");
  CHECK(inc["labels"]["severity"] == "critical");
  CHECK(inc["annotations"]["cohort"] == "firmware=2.4.1 support=18 lift=1.60");
  CHECK(inc["annotations"]["count"] == "18");
  CHECK(inc["generatorURL"] == "http://presenced.example:8080/#incident=7");

  // Inhibition on presenced's labels: site-b's device alert is suppressed by site-b's incident,
  // site-a's is not.
  REQUIRE(presence::test::wait_for(
      [&] { return state_of(am.find("presence/device/dev-b1")) == "suppressed"; }, kWait, 100ms));
  CHECK(am.find("presence/device/dev-b1")["status"]["inhibitedBy"].size() == 1);
  CHECK(state_of(am.find("presence/device/dev-a1")) == "active");
  CHECK(state_of(am.find("presence/incident/7")) == "active");

  // resolve_timeout is 3 s; the sink re-sends every 0.5 s, so for 5 s everything keeps firing
  // (watched, not slept: the first lapse fails the test at once).
  const bool lapsed = presence::test::wait_for(
      [&] {
        return state_of(am.find("presence/device/dev-a1")) != "active" ||
               state_of(am.find("presence/incident/7")) != "active";
      },
      5000ms, 250ms);
  CHECK_FALSE(lapsed);

  // The incident resolves (its resolve carries only the dedup_key: the sink uses the trigger's
  // labels): it leaves the list, and site-b's device alert is no longer inhibited.
  // Ended by the resolve itself, well inside resolve_timeout (a resolve with other labels would
  // end nothing, and the alert would only lapse 3 s after its last re-send).
  s.send({incident_resolve(7)});
  REQUIRE(presence::test::wait_for([&] { return am.find("presence/incident/7").is_null(); }, 1000ms, 50ms));
  REQUIRE(presence::test::wait_for(
      [&] { return state_of(am.find("presence/device/dev-b1")) == "active"; }, kWait, 100ms));

  // The devices come back: both alerts end in Alertmanager.
  s.send({device_resolve("dev-b1"), device_resolve("dev-a1")});
  REQUIRE(presence::test::wait_for([&] { return am.alerts().empty(); }, 1000ms, 50ms));
  CHECK_FALSE(s.logs.any("failed"));
}

TEST_CASE("alertmanager: without re-sends a firing alert lapses after resolve_timeout") {
  // The control for the re-send check above: the same alert, re-sent only every hour, is gone
  // from Alertmanager once its resolve_timeout (3 s) passes, though presenced never resolved it.
  RealAlertmanager am;
  Sender s({am.base()}, std::chrono::hours(1));
  s.send({device_trigger("dev-lapse", "site-a")});
  REQUIRE(presence::test::wait_for([&] { return !am.find("presence/device/dev-lapse").is_null(); }, kWait));
  CHECK(presence::test::wait_for([&] { return am.find("presence/device/dev-lapse").is_null(); }, 10'000ms, 200ms));
}

TEST_CASE("alertmanager: after a restart firing alerts are re-sent at once and resolve with their labels") {
  RealAlertmanager am;
  presence::test::TempDir state;
  {
    Sender before({am.base()}, 500ms, state.path());
    before.send({device_trigger("dev-r", "site-d")});
    REQUIRE(presence::test::wait_for([&] { return !am.find("presence/device/dev-r").is_null(); }, kWait));
  }  // presenced stops; Alertmanager would end the alert 3 s after the last re-send
  Sender after({am.base()}, 500ms, state.path());
  CHECK(after.logs.any("1 firing alert(s) restored"));
  const bool lapsed = presence::test::wait_for(
      [&] { return state_of(am.find("presence/device/dev-r")) != "active"; }, 4500ms, 250ms);
  CHECK_FALSE(lapsed);
  // The bare resolve (no site label) still ends exactly that alert: the labels came from the file.
  after.send({device_resolve("dev-r")});
  CHECK(presence::test::wait_for([&] { return am.find("presence/device/dev-r").is_null(); }, 1000ms, 50ms));
}

TEST_CASE("alertmanager: an unreadable state file is logged once and the sink starts empty") {
  RealAlertmanager am;
  presence::test::TempDir state;
  state.write("alertmanager.json", "{\"v\":1,\"alerts\":{\"k\":{\"labels\":7}}}");
  Sender s({am.base()}, 500ms, state.path());
  CHECK(s.logs.any("unreadable"));
  s.send({device_trigger("dev-s", "site-e")});
  CHECK(presence::test::wait_for([&] { return !am.find("presence/device/dev-s").is_null(); }, kWait));
}

TEST_CASE("alertmanager: every member of an HA pair gets every alert; one down delays only itself") {
  RealAlertmanager am1;
  RealAlertmanager am2;
  Sender s({am1.base(), am2.base()});
  s.send({device_trigger("dev-x", "site-c")});
  CHECK(presence::test::wait_for([&] { return !am1.find("presence/device/dev-x").is_null(); }, kWait));
  CHECK(presence::test::wait_for([&] { return !am2.find("presence/device/dev-x").is_null(); }, kWait));

  am2.proc.stop(15, 5000ms);  // the second member goes down
  s.d->submit({device_trigger("dev-y", "site-c")});
  CHECK(presence::test::wait_for([&] { return !am1.find("presence/device/dev-y").is_null(); }, kWait));
  CHECK(presence::test::wait_for([&] { return s.d->stats().sinks.at(1).failing; }, kWait));
  CHECK(s.d->stats().sinks.at(1).depth == 1);  // kept for the member that is down, retried
  CHECK(s.d->stats().sinks.at(0).depth == 0);
}
