#include "presence/core/naive.h"

#include <sstream>
#include <string>
#include <utility>

#include "presence/core/fleet.h"  // snapshot_text

namespace presence::core {

namespace {

AlertIntent naive_intent(const std::string& id, MonoTime at) {
  AlertIntent in;
  in.type = AlertIntent::Type::DeviceOffline;
  in.severity = Severity::Error;
  in.dedup_key = "presence/device/" + id;
  in.component = id;
  in.cls = "device_offline";
  in.at = at;
  in.details = {{"mode", "naive"}, {"device", id}};
  return in;
}

}  // namespace

// Home Assistant semantics: an "offline" status (will or not, retained or not: HA takes a
// retained availability payload as the current state) makes the entity unavailable at once, an
// "online" one available. Heartbeats are not availability. A takeover is a reconnect.
void NaiveAlerts::on_event(const Engine& engine, const Event& e,
                           std::vector<AlertIntent>& out) {
  if (e.device == kNoDevice) return;
  const std::string id(engine.id_of(e.device));
  if (e.kind == EventKind::Disconnected && e.reason != DisconnectReason::Takeover) {
    if (!firing_.insert(id).second) return;  // already paged: PagerDuty would dedup anyway
    auto in = naive_intent(id, e.at);
    in.action = AlertIntent::Action::Trigger;
    in.summary = "Device " + id + " offline (" + to_string(e.reason) + ")";
    in.details.emplace_back("reason", to_string(e.reason));
    out.push_back(std::move(in));
  } else if (e.kind == EventKind::Connected) {
    if (firing_.erase(id) == 0) return;
    auto in = naive_intent(id, e.at);
    in.action = AlertIntent::Action::Resolve;
    in.summary = "Device " + id + " online";
    out.push_back(std::move(in));
  }
}

// Home Assistant marks every MQTT entity unavailable while its own broker connection is down:
// a broker restart is a page per device (the contrast the scenario scorecard shows).
void NaiveAlerts::on_blind(const Engine& engine, MonoTime at,
                           std::vector<AlertIntent>& out) {
  for (DeviceIndex d = 0; d < engine.size(); ++d) {
    const std::string id(engine.id_of(d));
    if (!firing_.insert(id).second) continue;
    auto in = naive_intent(id, at);
    in.action = AlertIntent::Action::Trigger;
    in.summary = "Device " + id + " unavailable (broker connection lost)";
    in.details.emplace_back("reason", "broker_connection_lost");
    out.push_back(std::move(in));
  }
}

void NaiveAlerts::replay_sent(const std::vector<AlertIntent>& sent) {
  for (const auto& in : sent) {
    if (in.component.empty()) continue;
    if (in.action == AlertIntent::Action::Trigger) firing_.insert(in.component);
    else firing_.erase(in.component);
  }
}

std::string NaiveAlerts::serialize() const {
  std::string out = "presence-naive 1\n";
  for (const auto& id : firing_) out += snapshot_text::encode(id) + "\n";
  return out;
}

bool NaiveAlerts::restore(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string line;
  if (!std::getline(in, line) || line != "presence-naive 1") return false;
  while (std::getline(in, line)) {
    std::string id;
    if (!line.empty() && snapshot_text::decode(line, id)) firing_.insert(id);
  }
  return true;
}

}  // namespace presence::core
