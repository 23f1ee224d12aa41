#include "presence/alert/pagerduty_change.h"

#include <nlohmann/json.hpp>

#include "presence/alert/dashboard_link.h"
#include "presence/alert/json_text.h"
#include "presence/alert/payload.h"

namespace presence::alert {
namespace {

using json = nlohmann::json;

class PagerDutyChangeSink final : public Sink {
 public:
  explicit PagerDutyChangeSink(PagerDutyChangeConfig c) : c_(std::move(c)) {}
  const SinkConfig& config() const override { return c_.sink; }
  HttpRequest build(const std::vector<OutboxEntry>& batch) const override {
    return {c_.sink.url, pagerduty_change_body(c_, batch.front()), {"Content-Type: application/json"}};
  }

 private:
  PagerDutyChangeConfig c_;
};

}  // namespace

std::string pagerduty_change_body(const PagerDutyChangeConfig& c, const OutboxEntry& entry) {
  const auto& i = entry.intent;
  json details = json::object();
  for (const auto& [k, v] : i.details) details[k] = v;
  details["event"] = i.cls.empty() ? std::string(wire_name(i.type)) : i.cls;
  if (!i.component.empty()) details["component"] = i.component;
  json payload{{"summary", truncate_utf8(i.summary.empty() ? details["event"].get<std::string>() : i.summary,
                                         kPagerDutySummaryMax)},
               {"timestamp", iso8601_utc(entry.wall_ms)},
               {"source", c.source.empty() ? std::string("presenced") : c.source},
               {"custom_details", std::move(details)}};
  json j{{"routing_key", c.routing_key}, {"payload", std::move(payload)}};
  const std::string link = dashboard_link(c.dashboard_url, i);
  if (!link.empty()) j["links"] = json::array({{{"href", link}, {"text", "presenced dashboard"}}});
  return json_text(j);
}

std::unique_ptr<Sink> make_pagerduty_change_sink(PagerDutyChangeConfig config) {
  return std::make_unique<PagerDutyChangeSink>(std::move(config));
}

}  // namespace presence::alert
