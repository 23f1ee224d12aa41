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

bool superseded_by_own(const LogRecord& r, const std::vector<LogItem>& later,
                       Duration match_window) {
  if (r.sent.empty()) return false;
  for (const auto& i : later)
    if (covered(r, i.action, i.wall_ms, match_window)) return true;
  return false;
}

namespace {

// The words are core::to_string's (one owner); parsing walks the enum's range.
template <typename E>
std::optional<E> parse_word(const std::string& word) {
  for (unsigned i = 0; i < 256; ++i) {
    const auto e = static_cast<E>(i);
    const std::string w = core::to_string(e);
    if (w == "unknown") break;
    if (w == word) return e;
  }
  return std::nullopt;
}

}  // namespace

const char* action_word(core::AlertIntent::Action a) {
  switch (a) {
    case core::AlertIntent::Action::Trigger: return "trigger";
    case core::AlertIntent::Action::Resolve: return "resolve";
    case core::AlertIntent::Action::Notify: return "notify";
  }
  return "trigger";
}

std::string encode(const SendingRecord& r) {
  const auto& i = r.intent;
  nlohmann::json d = nlohmann::json::array();
  for (const auto& [k, v] : i.details) d.push_back({k, v});
  const nlohmann::json j{{"v", 1},
                         {"sink", r.sink},
                         {"by", r.by},
                         {"w", r.wall_ms},
                         {"a", action_word(i.action)},
                         {"dedup_key", i.dedup_key},
                         {"type", core::to_string(i.type)},
                         {"severity", core::to_string(i.severity)},
                         {"summary", i.summary},
                         {"component", i.component},
                         {"group", i.group},
                         {"class", i.cls},
                         {"details", d}};
  return j.dump();
}

std::optional<SendingRecord> decode_sending(const std::string& text) {
  try {
    const auto j = nlohmann::json::parse(text);
    if (!j.is_object() || j.value("v", 0) != 1) return std::nullopt;
    SendingRecord r;
    r.sink = j.at("sink").get<std::string>();
    r.by = j.at("by").get<std::string>();
    r.wall_ms = j.at("w").get<std::int64_t>();
    auto& i = r.intent;
    const std::string a = j.at("a").get<std::string>();
    if (a == "trigger") i.action = core::AlertIntent::Action::Trigger;
    else if (a == "resolve") i.action = core::AlertIntent::Action::Resolve;
    else if (a == "notify") i.action = core::AlertIntent::Action::Notify;
    else return std::nullopt;
    const auto type = parse_word<core::AlertIntent::Type>(j.at("type").get<std::string>());
    const auto severity = parse_word<core::Severity>(j.at("severity").get<std::string>());
    if (!type || !severity) return std::nullopt;
    i.type = *type;
    i.severity = *severity;
    i.dedup_key = j.at("dedup_key").get<std::string>();
    i.summary = j.value("summary", std::string());
    i.component = j.value("component", std::string());
    i.group = j.value("group", std::string());
    i.cls = j.value("class", std::string());
    for (const auto& kv : j.value("details", nlohmann::json::array()))
      i.details.emplace_back(kv.at(0).get<std::string>(), kv.at(1).get<std::string>());
    if (r.sink.empty() || i.dedup_key.empty() || r.wall_ms <= 0) return std::nullopt;
    return r;
  } catch (...) {
    return std::nullopt;
  }
}

const char* to_string(Handoff h) {
  switch (h) {
    case Handoff::Send: return "send";
    case Handoff::Held: return "held";
    case Handoff::Stale: return "stale";
    case Handoff::Expired: return "expired";
  }
  return "stale";
}

Handoff decide_handoff(const SendingRecord& r, const LogRecord& log, bool held,
                       const std::string& self, std::int64_t now_wall_ms, Duration max_age,
                       Duration match_window) {
  if (covered(log, action_word(r.intent.action), r.wall_ms, match_window)) return Handoff::Stale;
  if (held) return Handoff::Held;
  if (r.by == self) return Handoff::Stale;
  if (now_wall_ms - r.wall_ms >= max_age.count()) return Handoff::Expired;
  return Handoff::Send;
}

}  // namespace presence::ha
