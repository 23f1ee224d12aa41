#include "presence/ha/role.h"

#include <nlohmann/json.hpp>

namespace presence::ha {

const char* to_string(RoleName r) {
  switch (r) {
    case RoleName::Follower: return "follower";
    case RoleName::Leader: return "leader";
    case RoleName::FailOpen: return "fail_open";
  }
  return "follower";
}

void Role::etcd_result(MonoTime now, bool reachable) {
  if (reachable) {
    failing_since_.reset();
  } else if (!failing_since_) {
    failing_since_ = now;
  }
}

void Role::elected(MonoTime sent, std::int64_t create_revision) {
  fence_ = create_revision;
  lease_valid_until_ = sent + t_.lease_ttl - t_.safety;
}

void Role::step_down() {
  fence_ = 0;
  lease_valid_until_ = MonoTime{};
}

bool Role::fail_open(MonoTime now) const {
  return failing_since_ && now - *failing_since_ >= t_.fail_open_after;
}

RoleName Role::role(MonoTime now) const {
  if (fence_ != 0 && now < lease_valid_until_) return RoleName::Leader;
  if (fail_open(now)) return RoleName::FailOpen;
  return RoleName::Follower;
}

void PeerWatch::seen(MonoTime now, const std::string& name) {
  last_seen_ = now;
  present_ = true;
  name_ = name;
}

std::string encode(const LogRecord& r) {
  nlohmann::json j;
  j["v"] = 1;
  auto item = [](const LogItem& i) {
    return nlohmann::json{{"a", i.action}, {"w", i.wall_ms}, {"by", i.by}};
  };
  j["sent"] = nlohmann::json::array();
  for (const auto& i : r.sent) j["sent"].push_back(item(i));
  if (r.sending) j["sending"] = item(*r.sending);
  return j.dump();
}

std::optional<LogRecord> decode(const std::string& text) {
  try {
    const auto j = nlohmann::json::parse(text);
    if (!j.is_object() || j.value("v", 0) != 1) return std::nullopt;
    auto item = [](const nlohmann::json& i) {
      return LogItem{i.at("a").get<std::string>(), i.at("w").get<std::int64_t>(),
                     i.value("by", std::string())};
    };
    LogRecord r;
    for (const auto& i : j.at("sent")) r.sent.push_back(item(i));
    if (j.contains("sending")) r.sending = item(j["sending"]);
    return r;
  } catch (...) {
    return std::nullopt;
  }
}

void mark_sent(LogRecord& r) {
  if (!r.sending) return;
  r.sent.push_back(*r.sending);
  r.sending.reset();
  while (r.sent.size() > LogRecord::kKeep) r.sent.erase(r.sent.begin());
}

bool covered(const LogRecord& r, const std::string& action, std::int64_t wall_ms,
             Duration match_window) {
  const std::int64_t w = match_window.count();
  for (const auto& i : r.sent) {
    if (i.wall_ms > wall_ms + w) return true;  // superseded by a later notification
    if (i.action == action && i.wall_ms >= wall_ms - w) return true;
  }
  return false;
}

}  // namespace presence::ha
