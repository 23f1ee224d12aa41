// Prometheus Alertmanager as a sink (issue 18): POST /api/v2/alerts, so teams that route every
// page through Alertmanager (receivers, inhibition, silences, on-call) route presenced's too.
//
// Alertmanager identifies an alert by its label set and forgets a firing alert that is not
// re-sent within its resolve_timeout (default 5 m). So the sink:
//   - labels every alert the same way for its whole life: alertname (the alert type, e.g.
//     device_offline, fleet_incident), severity, dedup_key, device / scope, route, and the
//     device's or incident scope's segment labels (site, broker_node, firmware...);
//   - remembers the labels of each firing alert, so its resolve (which carries less) ends exactly
//     that alert (endsAt = the resolve's time);
//   - re-sends every firing alert every resend_interval from a small thread of its own, outside
//     the outbox (a re-send is state, not an event: losing one costs nothing);
//   - keeps the firing set in state_path, so a restarted presenced keeps re-sending and resolves
//     with the same labels.
// Notify intents (context, never a page) become an info alert, alertname "presenced_note" with
// the kind in label "note", that ends notify_for after it starts. Several Alertmanagers of an HA cluster: one sink per URL, each sent everything
// (Prometheus does the same; the cluster de-duplicates notifications).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "presence/alert/sink.h"
#include "presence/common/log.h"

namespace presence::alert {

struct AlertmanagerConfig {
  // url: the full endpoint, <base>/api/v2/alerts (alertmanager_endpoint() builds it).
  SinkConfig sink = sink_config("alertmanager", "");
  std::string dashboard_url;  // generatorURL base: <dashboard_url>/#device=<id>; "" = none
  // Must stay well below Alertmanager's resolve_timeout (default 5 m); Prometheus re-sends every 1 m.
  Duration resend_interval{std::chrono::minutes(1)};
  Duration notify_for{std::chrono::minutes(5)};
  std::string state_path;  // firing alerts across restarts; "" = memory only
  common::LogFn log;
};

// "<base>/api/v2/alerts" unless base already ends in it.
std::string alertmanager_endpoint(std::string_view base);

// One alert as Alertmanager's API takes it (postableAlert).
struct AmAlert {
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::int64_t starts_ms = 0;
  std::int64_t ends_ms = 0;  // 0 = none: firing until resolved or resolve_timeout
  std::string generator_url;
};

// A label name Alertmanager accepts ([a-zA-Z_][a-zA-Z0-9_]*): other characters become '_'.
std::string alertmanager_label_name(std::string_view key);
// The alert for one outbox entry, from the intent alone (the sink substitutes a remembered
// trigger's labels for a resolve's). Trigger: no endsAt; resolve: endsAt = its time; notify:
// severity info, endsAt = starts + notify_for.
AmAlert alertmanager_alert(const OutboxEntry& entry, std::string_view dashboard_url,
                           Duration notify_for);
// JSON array of postableAlerts.
std::string alertmanager_body(const std::vector<AmAlert>& alerts);

std::unique_ptr<Sink> make_alertmanager_sink(AlertmanagerConfig config);

}  // namespace presence::alert
