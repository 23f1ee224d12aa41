// Issue 12, one config truth. A silence time that loads from the config file (alerts.silences) is
// accepted by POST /v1/silences (api::parse_iso8601), and one refused by either is refused by both:
// they used to be two parsers (the file took 2026-11-21 and ...T12:00Z, the API required seconds).
// And the engine's own rule (core::config_error) is the loader's: a file the core would refuse
// does not load. (Topic patterns: config_sources_test, "one rule".)
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <string>

#include "presence/api/api.h"
#include "presence/app/config.h"
#include "presence/core/config.h"
#include "presence/core/fleet.h"
#include "presence/core/policy.h"

using namespace presence;

namespace {

// The silence's `ends` as the config loader reads it, or nullopt when the file is refused. (starts
// is the epoch: every time the corpus has after it is a valid end.)
std::optional<app::WallTime> from_file(const std::string& time) {
  const auto r = app::load_config_string(
      "alerts:\n  silences:\n    - match: {site: a}\n      starts: 1970-01-01T00:00:00Z\n"
      "      ends: \"" + time + "\"\n",
      "c.yaml", [](std::string_view) { return std::nullopt; });
  if (!r.ok()) return std::nullopt;
  return r.config->alerts.silences.at(0).ends;
}

}  // namespace

TEST_CASE("config file and POST /v1/silences accept and refuse the same times, same instant") {
  const char* corpus[] = {
      // accepted
      "2026-11-21", "2026-11-21T12:00Z", "2026-11-21T12:00:00Z", "2026-11-21t12:00:00z",
      "2026-11-21T12:00:00.5Z", "2026-11-21T12:00:00,250Z", "2026-11-21T12:00:00.123456789Z",
      "2026-11-21T13:00:00+01:00", "2026-11-21T13:00+0100", "2026-11-21T11:30:00-00:30",
      "2026-11-21T23:59:60Z", "1970-01-01T00:00:01Z", "2300-01-01T00:00:00Z",
      "2199-12-31T23:59:59.999Z",
      // refused
      "2026-11-21T12:00:00", "2026-11-21T12Z", "2026-11-21 12:00:00Z", "2026-02-30",
      "2026-13-01T00:00:00Z", "2026-11-21T24:00:00Z", "2026-11-21T12:60:00Z",
      "2026-11-21T12:00:00.Z", "2026-11-21T12:00:00Zjunk", "2026-11-21T12:00:00+1:00",
      "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", "26-11-21", "", "now",
      "2026-11-21T12:00:00+24:00"};
  for (const std::string t : corpus) {
    INFO(t);
    const auto file = from_file(t);
    const auto api = api::parse_iso8601(t);
    CHECK(file.has_value() == api.has_value());
    // The file keeps whole seconds (docs/configuration.md: fractions are truncated).
    if (file && api) CHECK(*file == std::chrono::floor<std::chrono::seconds>(*api));
  }
}

TEST_CASE("the forms the API used to refuse are accepted, at the instant they name") {
  using namespace std::chrono;
  const auto midnight = sys_days{year{2026} / 11 / 21};
  CHECK(api::parse_iso8601("2026-11-21") == midnight);
  CHECK(api::parse_iso8601("2026-11-21T12:00Z") == midnight + 12h);
  CHECK(api::parse_iso8601("2026-11-21T13:00+0100") == midnight + 12h);
  CHECK(from_file("2026-11-21T12:00Z") == midnight + 12h);
}

TEST_CASE("a file the core's config_error refuses does not load, and says which key") {
  auto load = [](const std::string& text) {
    return app::load_config_string(text, "c.yaml", [](std::string_view) { return std::nullopt; });
  };
  // 49 days is the core's bound on a heartbeat timeout (32-bit milliseconds in the timer wheel);
  // the loader had no such rule and loaded it.
  const auto r = load("presence:\n  heartbeat_timeout_ceiling: 50d\n");
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.errors.size() == 1);
  CHECK(app::to_string(r.errors[0]) ==
        "c.yaml:2: presence.heartbeat_timeout_ceiling: must be < 49 days");
  const auto cls = load(
      "device_classes:\n  - name: slow\n    heartbeat_timeout_floor: 1h\n"
      "    heartbeat_timeout_ceiling: 60d\n");
  REQUIRE_FALSE(cls.ok());
  CHECK(app::to_string(cls.errors.at(0)).find("device class 'slow'") != std::string::npos);
  // What the core accepts still loads, and the loaded engine config passes the core's rule.
  const auto ok = load("presence:\n  heartbeat_timeout_ceiling: 48d\n");
  REQUIRE(ok.ok());
  CHECK(core::config_error(ok.config->presence).empty());
}

TEST_CASE("the loader runs the ingest compiler over the whole set: a bad ignore pattern does not load") {
  // sources[i].ignore is compiled by ingest (source.cpp) only; the loader used to accept it and
  // only presenced's main refused it afterwards, without a line (tools loading the same file did
  // not refuse it at all).
  const auto r = app::load_config_string(
      "sources:\n  - name: plant\n    status: [\"plant/{id}/state\"]\n"
      "    ignore: [\"plant/{id/cmd\"]\n    online: [up]\n    offline: [down]\n",
      "c.yaml", [](std::string_view) { return std::nullopt; });
  REQUIRE_FALSE(r.ok());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].key == "sources[0].ignore[0]");
  CHECK(r.errors[0].line == 4);
}

// One set of rules for presence.* (issue 12 item 2): the loader used to keep its own copy of the
// core's checks, stricter in places (heartbeat_min_samples, restart_grace_min 0) and looser in
// others (the 49-day ceiling). Now every presence.* error the loader reports is a core problem,
// at the same key with the same reason, and a value the core accepts loads.
TEST_CASE("presence.*: the loader's error is the core's problem, key for key") {
  struct Case {
    const char* yaml;  // one key under presence:
    void (*apply)(core::Config&);
  };
  const Case cases[] = {
      {"offline_grace: 0s", [](core::Config& c) { c.offline_grace = core::Duration{0}; }},
      {"online_stable_for: 0s", [](core::Config& c) { c.online_stable_for = core::Duration{0}; }},
      {"heartbeat_min_samples: 0", [](core::Config& c) { c.heartbeat_min_samples = 0; }},
      {"heartbeat_timeout_factor: 0.5", [](core::Config& c) { c.heartbeat_timeout_factor = 0.5; }},
      {"heartbeat_timeout_ceiling: 50d",
       [](core::Config& c) { c.heartbeat_timeout_ceiling = std::chrono::hours(24 * 50); }},
      {"flap_history: 33", [](core::Config& c) { c.flap_history = 33; }},
      {"flap_low: 0.5", [](core::Config& c) { c.flap_low = 0.5; }},
      {"restart_grace_min: 0s", [](core::Config& c) { c.restart_grace_min = core::Duration{0}; }},
      {"max_label_values: 10000001", [](core::Config& c) { c.max_label_values = 10000001; }},
      {"forget_after: 3651d",
       [](core::Config& c) { c.forget_after = std::chrono::hours(24 * 3651); }},
  };
  for (const auto& k : cases) {
    CAPTURE(k.yaml);
    core::Config engine;
    k.apply(engine);
    const auto problems = core::config_problems(engine, "presence.");
    REQUIRE(problems.size() == 1);
    const auto r = app::load_config_string(std::string("presence:\n  ") + k.yaml + "\n", "c.yaml",
                                           [](std::string_view) { return std::nullopt; });
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].key == "presence." + problems[0].key);
    CHECK(r.errors[0].reason == problems[0].reason);
    CHECK(r.errors[0].line == 2);
  }
}

// One set of rules for alerts.policy.* (issue 12): the loader kept its own copy of the alert
// policy's and the fleet monitor's checks, stricter than the core's in places (blind_alert_after,
// incident_stable_for and straggler_grace 0 refused by the file, accepted by the core; the
// 10000 cap on details_max_devices and parent_return_grace only in the file). Now each
// alerts.policy error the loader reports is the core's problem (core::policy_problems /
// fleet_problems over policy_config / fleet_config), at the same key with the same reason.
TEST_CASE("alerts.policy.*: the loader's error is the core's problem, key for key") {
  struct Case {
    const char* yaml;  // one key under alerts.policy:
    void (*apply)(app::AlertPolicyConfig&);
  };
  using core::Duration;
  const Case cases[] = {
      {"group_interval: 0s", [](app::AlertPolicyConfig& p) { p.group_interval = Duration{0}; }},
      {"blind_alert_after: 0s",
       [](app::AlertPolicyConfig& p) { p.blind_alert_after = Duration{0}; }},
      {"parent_return_grace: 0s",
       [](app::AlertPolicyConfig& p) { p.parent_return_grace = Duration{0}; }},
      {"incident_window: 0s", [](app::AlertPolicyConfig& p) { p.incident_window = Duration{0}; }},
      {"incident_stable_for: 0s",
       [](app::AlertPolicyConfig& p) { p.incident_stable_for = Duration{0}; }},
      {"straggler_grace: 0s", [](app::AlertPolicyConfig& p) { p.straggler_grace = Duration{0}; }},
      {"incident_open_floor: 0", [](app::AlertPolicyConfig& p) { p.incident_open_floor = 0; }},
      {"incident_open_fraction: 0", [](app::AlertPolicyConfig& p) { p.incident_open_fraction = 0; }},
      {"incident_open_fraction: 1.5",
       [](app::AlertPolicyConfig& p) { p.incident_open_fraction = 1.5; }},
      {"incident_recovered_share: 0",
       [](app::AlertPolicyConfig& p) { p.incident_recovered_share = 0; }},
      {"storm_open_floor: 0", [](app::AlertPolicyConfig& p) { p.storm_open_floor = 0; }},
      {"storm_open_fraction: 2", [](app::AlertPolicyConfig& p) { p.storm_open_fraction = 2; }},
      {"storm_open_factor: 0.5", [](app::AlertPolicyConfig& p) { p.storm_open_factor = 0.5; }},
      {"storm_flapping_floor: 0", [](app::AlertPolicyConfig& p) { p.storm_flapping_floor = 0; }},
      {"storm_flapping_fraction: 0",
       [](app::AlertPolicyConfig& p) { p.storm_flapping_fraction = 0; }},
      {"details_max_devices: 0", [](app::AlertPolicyConfig& p) { p.details_max_devices = 0; }},
      {"details_max_devices: 10001",
       [](app::AlertPolicyConfig& p) { p.details_max_devices = 10001; }},
  };
  for (const auto& k : cases) {
    const std::string yaml = k.yaml;
    CAPTURE(yaml);
    app::Config config;
    k.apply(config.alerts.policy);
    auto problems = core::policy_problems(app::policy_config(config));
    for (auto& p : core::fleet_problems(app::fleet_config(config))) problems.push_back(p);
    // The first is the one at the key set; the rest are what the mapping derives from it
    // (incident_window 0 gives window_resolution 0), said once at that key.
    REQUIRE_FALSE(problems.empty());
    const auto r = app::load_config_string(std::string("alerts:\n  policy:\n    ") + k.yaml + "\n",
                                           "c.yaml", [](std::string_view) { return std::nullopt; });
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].key == "alerts.policy." + problems[0].key);
    CHECK(r.errors[0].reason == problems[0].reason);
    CHECK(r.errors[0].line == 3);
  }
  // The defaults load and the core accepts what they map to.
  const auto ok = app::load_config_string("alerts:\n  policy:\n    incident_window: 1m\n", "c.yaml",
                                          [](std::string_view) { return std::nullopt; });
  REQUIRE(ok.ok());
  CHECK(core::validate(app::policy_config(*ok.config)).empty());
  CHECK(core::validate(app::fleet_config(*ok.config)).empty());
}
