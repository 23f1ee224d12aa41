#include "presence/alert/teams.h"

#include <nlohmann/json.hpp>

#include "presence/alert/dashboard_link.h"
#include "presence/alert/json_text.h"
#include "presence/alert/payload.h"

namespace presence::alert {
namespace {

using json = nlohmann::json;
using Action = core::AlertIntent::Action;
using Type = core::AlertIntent::Type;

json fact(const std::string& title, const std::string& value) {
  return json{{"title", title}, {"value", value}};
}

// What the on-call reads first: why it is down, in the policy's own words.
std::string cause_of(const core::AlertIntent& i) {
  std::string cohort = detail_of(i, "cohort_1");
  if (!cohort.empty()) return "likely cohort " + cohort;
  const std::string reason = detail_of(i, "reason");
  if (!reason.empty()) return reason;
  switch (i.type) {
    case Type::DeviceOffline: return "device offline";
    case Type::DeviceFlapping: return "device flapping";
    case Type::DeviceGroup: return "unrelated devices down";
    case Type::FleetIncident: return detail_of(i, "disruption").empty()
                                         ? "fleet drop"
                                         : detail_of(i, "disruption") + " disruption";
    case Type::ReconnectStorm: return "reconnect storm";
    case Type::Stragglers: return "devices did not come back after an incident";
    case Type::Blind: return "presenced lost the broker";
    case Type::Persistence: return "presenced cannot write its store";
    case Type::DeviceCap: return "presenced refuses new device ids";
    case Type::Overloaded: return "presenced overloaded";
  }
  return wire_name(i.type);
}

}  // namespace

std::string teams_body(const OutboxEntry& entry, std::string_view dashboard_url) {
  const auto& i = entry.intent;
  const char* word = i.action == Action::Resolve  ? "RESOLVED"
                     : i.action == Action::Notify ? "INFO"
                                                  : "TRIGGERED";
  // Adaptive Card colours: Attention (red) for a page, Good (green) resolved, Accent (blue) info.
  const char* color = i.action == Action::Resolve  ? "Good"
                      : i.action == Action::Notify ? "Accent"
                      : i.severity == core::Severity::Warning ? "Warning"
                                                              : "Attention";
  const std::string kind =
      i.action == Action::Notify && !i.cls.empty() ? i.cls : std::string(wire_name(i.type));
  json body = json::array();
  body.push_back({{"type", "TextBlock"},
                  {"text", std::string(word) + ": " + kind +
                               (i.component.empty() ? "" : " (" + i.component + ")")},
                  {"weight", "Bolder"},
                  {"size", "Medium"},
                  {"color", color},
                  {"wrap", true}});
  if (!i.summary.empty())
    body.push_back({{"type", "TextBlock"}, {"text", truncate_utf8(i.summary, 2000)}, {"wrap", true}});

  json facts = json::array();
  std::string scope = detail_of(i, "scope");
  if (scope.empty()) scope = i.component;
  if (!scope.empty()) facts.push_back(fact("Scope", scope));
  facts.push_back(fact(i.action == Action::Resolve ? "Resolved" : "Since", iso8601_utc(entry.wall_ms)));
  std::string count = detail_of(i, "count");
  if (count.empty() && (i.type == Type::DeviceOffline || i.type == Type::DeviceFlapping)) count = "1";
  if (!count.empty()) facts.push_back(fact("Count", count));
  if (i.action != Action::Resolve) facts.push_back(fact("Cause", cause_of(i)));
  // A resolve carries no severity of its own (the policy sends the key and a summary).
  if (i.action != Action::Resolve)
    facts.push_back(fact("Severity", wire_name(i.action == Action::Notify ? core::Severity::Info
                                                                           : i.severity)));
  if (!i.group.empty()) facts.push_back(fact("Route", i.group));
  body.push_back({{"type", "FactSet"}, {"facts", std::move(facts)}});
  const std::string devices = detail_of(i, "devices");
  if (!devices.empty())
    body.push_back({{"type", "TextBlock"},
                    {"text", "Devices: " + truncate_utf8(devices, 2000)},
                    {"wrap", true},
                    {"isSubtle", true},
                    {"size", "Small"}});

  json card{{"$schema", "http://adaptivecards.io/schemas/adaptive-card.json"},
            {"type", "AdaptiveCard"},
            {"version", "1.4"},
            {"body", std::move(body)}};
  const std::string link = dashboard_link(dashboard_url, i);
  if (!link.empty())
    card["actions"] = json::array({{{"type", "Action.OpenUrl"}, {"title", "Open in presenced"}, {"url", link}}});
  // Teams shows the card full width rather than as a narrow bubble.
  card["msteams"] = {{"width", "Full"}};
  json message{{"type", "message"},
               {"attachments", json::array({{{"contentType", "application/vnd.microsoft.card.adaptive"},
                                             {"contentUrl", nullptr},
                                             {"content", std::move(card)}}})}};
  return json_text(message);
}

namespace {

class TeamsSink final : public Sink {
 public:
  explicit TeamsSink(TeamsConfig c) : c_(std::move(c)) {}
  const SinkConfig& config() const override { return c_.sink; }
  Duration min_interval() const override { return c_.min_interval; }
  HttpRequest build(const std::vector<OutboxEntry>& batch) const override {
    return {c_.sink.url, teams_body(batch.front(), c_.dashboard_url), {"Content-Type: application/json"}};
  }

 private:
  TeamsConfig c_;
};

}  // namespace

std::unique_ptr<Sink> make_teams_sink(TeamsConfig config) {
  return std::make_unique<TeamsSink>(std::move(config));
}

}  // namespace presence::alert
