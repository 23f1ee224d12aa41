// The config's ingest concern (issue 12: config.cpp split by concern): the file's topics and
// device classes in the ingest compiler's terms, and the one rule for a topic pattern, which is
// the compiler's own (presence/ingest/topic_pattern.h; docs/topics.md).
#include <string>
#include <vector>

#include "presence/app/config.h"
#include "presence/ingest/topic_pattern.h"

namespace presence::app {

ingest::TopicOptions topic_options(const Config& c) {
  // An empty pattern in the file means "do not subscribe".
  auto one = [](const std::string& p) {
    return p.empty() ? std::vector<std::string>{} : std::vector<std::string>{p};
  };
  ingest::TopicOptions t;
  const auto& ct = c.topics;
  t.status = one(ct.status);
  t.heartbeat = one(ct.heartbeat);
  t.emqx_connected = one(ct.emqx_connected);
  t.emqx_disconnected = one(ct.emqx_disconnected);
  const std::string& be = ct.broker_ext;
  auto under = [&](const char* tail) {
    return be.empty() ? std::vector<std::string>{} : std::vector<std::string>{be + tail};
  };
  t.broker_ext_boot = under("/boot");
  t.broker_ext_heartbeat = under("/heartbeat");
  t.broker_ext_connected = under("/clients/{id}/connected");
  t.broker_ext_disconnected = under("/clients/{id}/disconnected");
  t.broker_ext_alive = under("/alive");
  t.broker_ext_clients = under("/clients");
  t.uptime.clear();
  if (!ct.mosquitto_uptime.empty()) t.uptime.push_back(ct.mosquitto_uptime);
  if (!ct.emqx_uptime.empty()) t.uptime.push_back(ct.emqx_uptime);
  return t;
}

std::vector<ingest::DeviceClassSpec> device_class_specs(const Config& c) {
  std::vector<ingest::DeviceClassSpec> out;
  for (const auto& cd : c.device_classes) {
    ingest::DeviceClassSpec d;
    d.timeouts.name = cd.name;
    d.timeouts.heartbeat_timeout_floor = cd.heartbeat_timeout_floor;
    d.timeouts.heartbeat_timeout_ceiling = cd.heartbeat_timeout_ceiling;
    d.timeouts.offline_grace = cd.offline_grace;
    d.match = cd.match;
    out.push_back(std::move(d));
  }
  return out;
}

std::optional<std::string> validate_topic_pattern(std::string_view pattern, bool require_id) {
  // One rule (issue 14): the loader used to reject '+' and '#' that the ingest compiler accepts
  // and docs/topics.md allows. Now the loader asks the compiler itself.
  if (pattern.empty()) return "must not be empty";
  std::string error;
  const auto kind = require_id ? ingest::TopicKind::Status : ingest::TopicKind::Uptime;
  if (ingest::TopicPattern::compile(kind, pattern, &error)) return std::nullopt;
  const std::string prefix = "topic pattern '" + std::string(pattern) + "': ";
  if (error.rfind(prefix, 0) == 0) error.erase(0, prefix.size());
  return error;
}

}  // namespace presence::app
