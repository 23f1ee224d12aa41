// alerts.mode: naive, the baseline policy the scenario scorecard compares against (issue 6).
// Pure, like AlertPolicy: events in, AlertIntents out, no clock of its own.
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "presence/core/decision.h"
#include "presence/core/engine.h"
#include "presence/core/event.h"

namespace presence::core {

// mode: naive. What Home-Assistant-style setups do: pages on every offline status of a device at
// once (retained too), on every device when presenced loses the broker, resolves on every online
// status; no grace, no incidents, no grouping. Same dedup_key scheme as the
// policy (presence/device/<id>), so the scorecard compares like with like. Firing set survives a
// restart through the snapshot, so a resolve after a restart still closes its page.
class NaiveAlerts {
 public:
  void on_event(const Engine& engine, const Event& event,
                std::vector<AlertIntent>& out);
  // presenced lost the broker: every known device not firing pages (Home Assistant marks all
  // MQTT entities unavailable).
  void on_blind(const Engine& engine, MonoTime at, std::vector<AlertIntent>& out);
  std::string serialize() const;
  bool restore(std::string_view text);
  // Decisions the outbox holds that the snapshot did not (issue 19 item 7), in order.
  void replay_sent(const std::vector<AlertIntent>& sent);
  std::size_t firing() const { return firing_.size(); }

 private:
  std::unordered_set<std::string> firing_;
};

}  // namespace presence::core
