// Microsoft Teams through a Workflows webhook ("When a Teams webhook request is received", issue
// 18; the Office 365 connector webhooks are retired). Each alert is one Adaptive Card (1.4, what
// Teams renders) in the Workflows message envelope:
//   {"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
//    "contentUrl":null,"content":{"type":"AdaptiveCard","version":"1.4","body":[..],"actions":[..]}}]}
// body: a coloured title (TRIGGERED / RESOLVED / INFO + the alert type), the summary, a FactSet
// (Scope, Since, Count, Cause; Resolved for a resolve) and an Action.OpenUrl to the dashboard's
// device or incident view. A resolve posts a resolved card; a Notify an info card.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "presence/alert/sink.h"

namespace presence::alert {

struct TeamsConfig {
  SinkConfig sink = sink_config("teams", "");
  std::string dashboard_url;  // the card's "Open in presenced" button; "" = no button
  // Workflows webhooks throttle bursts; one card a second keeps a storm's cards in order.
  Duration min_interval{std::chrono::seconds(1)};
};

// The whole request body for one entry.
std::string teams_body(const OutboxEntry& entry, std::string_view dashboard_url);

std::unique_ptr<Sink> make_teams_sink(TeamsConfig config);

}  // namespace presence::alert
