// PagerDuty change events (/v2/change/enqueue, issue 18): context on the service's timeline that
// never pages — a broker restart presenced detected, presenced itself restarted, a maintenance
// silence started or ended, a fleet drop that healed before its page went out. Only Notify
// intents go here (make_sinks sets accepts); the Events API sink never sends them.
//   {"routing_key":..,"payload":{"summary":..,"timestamp":..,"source":..,"custom_details":{..}},
//    "links":[{"href":..,"text":..}]}
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "presence/alert/sink.h"

namespace presence::alert {

struct PagerDutyChangeConfig {
  SinkConfig sink = sink_config("pagerduty-change", "https://events.pagerduty.com/v2/change/enqueue");
  std::string routing_key;
  std::string source;         // payload.source; "" = "presenced"
  std::string dashboard_url;  // links[0]; "" = no link
};

std::string pagerduty_change_body(const PagerDutyChangeConfig& config, const OutboxEntry& entry);

std::unique_ptr<Sink> make_pagerduty_change_sink(PagerDutyChangeConfig config);

}  // namespace presence::alert
