#include "presence/core/policy.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

namespace presence::core {

namespace {

constexpr std::size_t kMaxKey = 255;
constexpr std::size_t kMaxSummary = 1024;

// The pseudo-label "alert" and PagerDuty "class" of each alert type: the type's own word
// (decision.h's to_string), so docs, silences and payloads use one vocabulary.
const char* alert_class(AlertIntent::Type t) { return to_string(t); }

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// dedup_key <= 255 chars: long ids keep a prefix and a stable hash of the whole id.
std::string make_key(std::string_view prefix, std::string_view id) {
  std::string key = std::string(prefix) + std::string(id);
  if (key.size() <= kMaxKey) return key;
  char tail[24];
  std::snprintf(tail, sizeof tail, "#%016llx", static_cast<unsigned long long>(fnv1a(id)));
  key.resize(kMaxKey - std::char_traits<char>::length(tail));
  return key + tail;
}

std::string clip(std::string s, std::size_t max) {
  if (s.size() > max) {
    s.resize(max - 3);
    s += "...";
  }
  return s;
}

std::string pct(double share) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", share * 100.0);
  return b;
}

std::string fixed(double v, int digits) {
  char b[48];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string scope_text(const Incident& inc) {
  return inc.scope_key.empty() ? std::string("fleet") : inc.scope_key + "=" + inc.scope_value;
}

std::string hint_text(const std::vector<CohortHint>& hint, const std::string& scope) {
  std::string s;
  for (const auto& h : hint) {
    if (!s.empty()) s += ", ";
    s += h.key + "=" + h.value + " (" + std::to_string(h.support) + " devices, " + pct(h.share_in_incident) +
         " vs " + pct(h.share_in_scope) + " of " + scope + ", lift " + fixed(h.lift, 1) + ")";
  }
  return s;
}

}  // namespace

std::vector<ConfigProblem> policy_problems(const PolicyConfig& c) {
  std::vector<ConfigProblem> out;
  auto number = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return std::string(buf);
  };
  auto problem = [&](bool ok, std::string key, std::string reason) {
    if (!ok) out.push_back({std::move(key), std::move(reason), {}});
  };
  auto positive = [&](Duration d, const char* key) {
    problem(d.count() > 0, key, "must be greater than 0");
  };
  problem(c.alert_after.count() >= 0, "alert_after", "must not be negative");
  problem(c.group_wait.count() >= 0, "group_wait", "must not be negative");
  positive(c.group_interval, "group_interval");
  positive(c.blind_alert_after, "blind_alert_after");
  problem(c.details_max_devices >= 1 && c.details_max_devices <= 10000, "details_max_devices",
          "must be in 1..10000 (PagerDuty caps an event at 512 KB), got " +
              std::to_string(c.details_max_devices));
  problem(c.group_cohort_min >= 2, "group_cohort_min", "must be at least 2");
  problem(c.silence_incident_cover > 0 && c.silence_incident_cover <= 1, "silence_incident_cover",
          "must be in (0, 1], got " + number(c.silence_incident_cover));
  positive(c.parent_return_grace, "parent_return_grace");
  for (std::size_t i = 0; i < c.rules.size(); ++i)
    for (const auto& [k, v] : c.rules[i].match)
      problem(!k.empty(), "rules[" + std::to_string(i) + "].match", "empty label key");
  return out;
}

std::string validate(const PolicyConfig& c) {
  const auto problems = policy_problems(c);
  if (problems.empty()) return {};
  return problems.front().key + ": " + problems.front().reason;
}

struct AlertPolicy::Impl {
  PolicyConfig cfg;
  FleetMonitor fleet;
  IdOf id_of;
  std::vector<AlertIntent> out;
  PolicyCounters counters;
  std::int64_t now = std::numeric_limits<std::int64_t>::min();
  std::int64_t resume_at = std::numeric_limits<std::int64_t>::min();  // end of blind/grace

  // Per device with an open problem only (offline or flapping): a few dozen bytes.
  struct DeviceAlert {
    enum Phase : std::uint8_t { Pending, Silenced, Batched, Firing };
    Phase phase = Pending;
    bool flapping = false;
    std::int64_t due = 0;
    std::uint64_t group = 0;  // Firing: 0 = sent alone, else the DeviceGroup
    // Released by this healed drop incident (blip): paged as "still down after the blip", their
    // common cause, not as unrelated failures. Not in the snapshot (then: unrelated).
    std::uint32_t after_incident = 0;
  };
  std::unordered_map<DeviceIndex, DeviceAlert> devs;
  // Device problems an incident holds: when each started, so a device released by a healed
  // incident (dismiss) is paged on its own clock, from its own Offline/Flapping transition.
  struct HeldProblem {
    std::int64_t since = 0;
    bool flapping = false;
  };
  std::unordered_map<DeviceIndex, HeldProblem> held_problems;
  // Released by a healed incident while still suspect: its page, if it comes, names the blip.
  std::unordered_map<DeviceIndex, std::uint32_t> released_by;
  std::set<std::pair<std::int64_t, DeviceIndex>> due;

  struct Batch {
    std::vector<DeviceIndex> members;
    std::int64_t flush_at = kNeverDue;
    std::int64_t last_flush = std::numeric_limits<std::int64_t>::min();
    std::size_t rule = 0;
  };
  std::map<std::string, Batch> batches;  // by route

  struct Group {
    std::string key;
    std::string route;
    std::int64_t since = 0;
    std::vector<DeviceIndex> members;
    std::size_t remaining = 0;
    std::string cohort;  // "key=value" for a cohort page (issue 11), "" for independent failures
  };
  std::map<std::uint64_t, Group> groups;
  std::uint64_t next_group = 1;

  struct IncidentAlert {
    enum Phase : std::uint8_t { Waiting, Silenced, Firing, Done };
    Phase incident = Waiting;
    std::int64_t due = kNeverDue;  // Waiting (Blind): when to page
    Phase stragglers = Done;
    std::int64_t incident_since = 0, stragglers_since = 0;
  };
  std::map<std::uint32_t, IncidentAlert> incs;

  std::vector<Silence> silences;
  std::uint64_t next_silence = 1;

  Impl(PolicyConfig p, FleetConfig f, IdOf ids)
      : cfg(std::move(p)), fleet(std::move(f)), id_of(std::move(ids)) {}

  std::string id(DeviceIndex d) const { return id_of ? id_of(d) : std::to_string(d); }

  // --- Parents and children (issue 15) --------------------------------------------------------
  // A parent down makes its subtree unreachable: a child that drops then is not a failure of its
  // own but part of the parent's one page (the parent's device page names how many devices are
  // behind it). The fleet monitor learns the child's state without drop semantics (resync), so
  // an edge node with its 20 devices is one drop, not 21 that open a fleet incident. When the
  // parent returns, the children still down after parent_return_grace are paged once, as its
  // stragglers (dedup key presence/parent-stragglers/<parent>/<n>), resolved when the last is
  // back. A child that drops while every ancestor is up is paged as itself, as before.
  Topology topo;
  std::vector<std::string> topo_errors;
  std::unordered_map<DeviceIndex, std::string> unreach;  // child -> topmost ancestor down when it dropped
  struct ParentReturn {
    std::string parent;
    std::string key;
    std::int64_t returned = 0;
    std::int64_t due = kNeverDue;          // waiting: when the children still down are paged
    bool firing = false;
    std::vector<DeviceIndex> members;   // waiting: the unreachable children; firing: those paged
    std::size_t remaining = 0;          // firing: paged and not back yet
  };
  std::map<std::uint64_t, ParentReturn> returns;
  std::uint64_t next_return = 1;
  std::unordered_map<DeviceIndex, std::uint64_t> straggling;  // child -> its firing return page

  void set_parent_label(DeviceIndex d, std::string_view value) {
    const std::string me = id(d);
    // A source-wide parent label (every Zigbee2MQTT device's parent is the bridge) also reaches
    // the parent itself: a device is never its own parent, so there it means "no parent".
    if (value == me) value = {};
    std::string err = topo.set_parent(me, d, value);
    if (err.empty()) return;
    ++counters.parent_cycles_refused;
    if (topo_errors.size() < 64) topo_errors.push_back(std::move(err));
  }

  // Returns true when the transition was the drop of an unreachable device: handled here.
  bool topology_step(const Transition& t, std::int64_t at) {
    const std::string me = id(t.device);
    const bool down_now = t.to == State::Suspect || t.to == State::Offline;
    const bool problem = down_now || t.to == State::Flapping;
    if (topo.down(me) != down_now && (!down_now || topo.has_children(me))) {
      topo.set_down(me, down_now);
      if (down_now) parent_down(me);
      else parent_up(me, at);
    }
    if (problem) {
      std::string cause = topo.down_ancestor(me);
      auto u = unreach.find(t.device);
      // Also held: a child that dropped behind its parent, whose parent is back, that is still
      // on its way down (suspect -> offline): the parent's return grace decides about it.
      if (cause.empty() && u == unreach.end() && straggling.count(t.device) == 0) return false;
      fleet.resync(t.device, t.to);
      pump_fleet();
      auto it = devs.find(t.device);
      if (it != devs.end() && it->second.phase != DeviceAlert::Firing) cancel(t.device, false);
      if (u == unreach.end() && straggling.count(t.device) == 0) {
        unreach.emplace(t.device, cause);
        ++counters.unreachable_held;
      }
      return true;
    }
    if (t.to == State::Online || t.to == State::Unknown) child_back(t.device, at);
    return false;
  }

  void parent_down(const std::string& parent) {
    // Children that dropped a moment before their parent (a heartbeat timeout that fired first)
    // are part of the same failure: their pages, not sent yet, are taken back.
    for (DeviceIndex d : topo.descendants(parent)) {
      auto it = devs.find(d);
      if (it == devs.end() || it->second.phase == DeviceAlert::Firing) continue;
      cancel(d, false);
      if (unreach.emplace(d, parent).second) ++counters.unreachable_held;
    }
    // Down again before its return grace ended: the children wait for the next return.
    std::erase_if(returns, [&](const auto& r) { return !r.second.firing && r.second.parent == parent; });
  }

  void parent_up(const std::string& parent, std::int64_t at) {
    ParentReturn r;
    r.parent = parent;
    r.returned = at;
    r.due = at + cfg.parent_return_grace.count();
    for (DeviceIndex d : topo.descendants(parent))
      if (unreach.count(d) != 0 && topo.down_ancestor(id(d)).empty()) r.members.push_back(d);
    if (r.members.empty()) return;
    const std::uint64_t n = next_return++;
    r.key = make_key("presence/parent-stragglers/", parent + "/" + std::to_string(n));
    returns.emplace(n, std::move(r));
  }

  void child_back(DeviceIndex d, std::int64_t at) {
    unreach.erase(d);
    auto s = straggling.find(d);
    if (s == straggling.end()) return;
    const std::uint64_t n = s->second;
    straggling.erase(s);
    auto r = returns.find(n);
    if (r == returns.end() || --r->second.remaining > 0) return;
    auto& a = push(AlertIntent::Action::Resolve, AlertIntent::Type::Stragglers, r->second.key, at);
    a.component = r->second.parent;
    a.summary = clip("all devices behind " + r->second.parent + " are back online", kMaxSummary);
    returns.erase(r);
  }

  void fire_return(std::uint64_t n, std::int64_t at) {
    auto r = returns.find(n);
    if (r == returns.end()) return;
    ParentReturn& ret = r->second;
    std::vector<DeviceIndex> still;
    for (DeviceIndex d : ret.members)
      if (unreach.count(d) != 0 && topo.down_ancestor(id(d)).empty()) still.push_back(d);
    ret.due = kNeverDue;
    if (still.empty()) {
      returns.erase(r);
      return;
    }
    bool silenced = true;
    for (DeviceIndex d : still) silenced = silenced && device_silenced(d, alert_class(AlertIntent::Type::Stragglers));
    for (DeviceIndex d : still) unreach.erase(d);
    if (silenced) {
      ++counters.alerts_silenced;
      returns.erase(r);
      return;
    }
    ret.firing = true;
    ret.members = still;
    ret.remaining = still.size();
    for (DeviceIndex d : still) straggling[d] = n;
    auto& a = push(AlertIntent::Action::Trigger, AlertIntent::Type::Stragglers, ret.key, at);
    a.severity = cfg.straggler_severity;
    a.component = ret.parent;
    const std::size_t rule = rule_of(still.front(), alert_class(AlertIntent::Type::Stragglers));
    a.group = route_of(rule);
    std::size_t listed = 0;
    const std::string ids = id_list(still, listed);
    const double secs = static_cast<double>(at - ret.returned) / 1000.0;
    a.summary = clip(std::to_string(still.size()) + " of " + std::to_string(ret.members.size()) +
                         " devices behind " + ret.parent + " did not come back within " + fixed(secs, 0) +
                         " s after it returned: " + ids + (listed < still.size() ? ", ..." : ""),
                     kMaxSummary);
    a.details.emplace_back("parent", ret.parent);
    a.details.emplace_back("count", std::to_string(still.size()));
    a.details.emplace_back("devices", ids);
  }

  std::size_t behind_count(DeviceIndex d) const {
    if (topo.empty()) return 0;
    const std::string me = id(d);
    return topo.has_children(me) ? topo.descendant_count(me) : 0;
  }

  // The parent's own page names what is behind it.
  void describe_parent(AlertIntent& a, DeviceIndex d) const {
    if (topo.empty()) return;
    const std::string me = id(d);
    if (!topo.has_children(me)) return;
    const std::size_t behind = topo.descendant_count(me);
    a.summary = clip(a.summary + "; " + std::to_string(behind) + " device" + (behind == 1 ? "" : "s") +
                         " behind it unreachable",
                     kMaxSummary);
    a.details.emplace_back("unreachable_behind", std::to_string(behind));
  }

  // --- Matching --------------------------------------------------------------------------------

  static bool matches(const std::vector<LabelMatch>& match,
                      const std::vector<std::pair<std::string_view, std::string_view>>& labels,
                      std::string_view alert) {
    for (const auto& [k, v] : match) {
      if (k == "alert") {
        if (v != alert) return false;
        continue;
      }
      bool ok = false;
      for (const auto& [lk, lv] : labels)
        if (lk == k && lv == v) ok = true;
      if (!ok) return false;
    }
    return true;
  }

  bool active(const Silence& s) const { return to_ms(s.starts_at) <= now && now < to_ms(s.ends_at); }

  bool device_silenced(DeviceIndex d, std::string_view alert) const {
    if (silences.empty()) return false;
    auto labels = fleet.labels(d);
    for (const auto& s : silences)
      if (active(s) && matches(s.match, labels, alert)) return true;
    return false;
  }

  bool incident_silenced(const Incident& inc, std::string_view alert, const std::vector<DeviceIndex>& devices) const {
    std::vector<std::pair<std::string_view, std::string_view>> scope;
    if (!inc.scope_key.empty()) scope.emplace_back(inc.scope_key, inc.scope_value);
    for (const auto& s : silences) {
      if (!active(s)) continue;
      if (matches(s.match, scope, alert)) return true;
      if (devices.empty()) continue;
      std::size_t covered = 0;
      for (DeviceIndex d : devices) covered += matches(s.match, fleet.labels(d), alert);
      if (static_cast<double>(covered) >= cfg.silence_incident_cover * static_cast<double>(devices.size()))
        return true;
    }
    return false;
  }

  std::size_t rule_of(DeviceIndex d, std::string_view alert) const {
    auto labels = fleet.labels(d);
    for (std::size_t i = 0; i < cfg.rules.size(); ++i)
      if (matches(cfg.rules[i].match, labels, alert)) return i;
    return cfg.rules.size();
  }

  std::size_t rule_of_incident(const Incident& inc, std::string_view alert) const {
    std::vector<std::pair<std::string_view, std::string_view>> scope;
    if (!inc.scope_key.empty()) scope.emplace_back(inc.scope_key, inc.scope_value);
    for (std::size_t i = 0; i < cfg.rules.size(); ++i)
      if (!cfg.rules[i].match.empty() && matches(cfg.rules[i].match, scope, alert)) return i;
    return cfg.rules.size();
  }

  std::string route_of(std::size_t rule) const { return rule < cfg.rules.size() ? cfg.rules[rule].route : std::string(); }

  // --- Output ----------------------------------------------------------------------------------

  AlertIntent& push(AlertIntent::Action action, AlertIntent::Type type, std::string key, std::int64_t at) {
    AlertIntent a;
    a.action = action;
    a.type = type;
    a.dedup_key = std::move(key);
    a.cls = alert_class(type);
    a.at = mono_ms(at);
    out.push_back(std::move(a));
    if (action == AlertIntent::Action::Trigger) ++counters.triggers;
    else if (action == AlertIntent::Action::Notify) ++counters.notices;
    else ++counters.resolves;
    return out.back();
  }

  std::string device_key(DeviceIndex d) const { return make_key("presence/device/", id(d)); }
  static std::string group_key(std::uint64_t g) { return "presence/group/" + std::to_string(g); }
  static std::string incident_key(const Incident& inc) {
    return std::string(inc.kind == IncidentKind::Blind ? "presence/blind/" : "presence/incident/") +
           std::to_string(inc.id);
  }
  static std::string straggler_key(std::uint32_t id) { return "presence/stragglers/" + std::to_string(id); }

  void add_labels(AlertIntent& a, DeviceIndex d) const {
    for (const auto& [k, v] : fleet.labels(d)) a.details.emplace_back(std::string(k), std::string(v));
  }

  std::string id_list(const std::vector<DeviceIndex>& devices, std::size_t& listed) const {
    std::string s;
    listed = 0;
    for (DeviceIndex d : devices) {
      if (listed == cfg.details_max_devices) break;
      if (!s.empty()) s += ",";
      s += id(d);
      ++listed;
    }
    return s;
  }

  // --- Device alerts ---------------------------------------------------------------------------

  void cancel(DeviceIndex d, bool held) {
    auto it = devs.find(d);
    if (it == devs.end()) return;
    auto& a = it->second;
    if (a.phase == DeviceAlert::Firing) return;  // already paged: resolves normally
    if (a.phase == DeviceAlert::Pending) due.erase({a.due, d});
    if (a.phase == DeviceAlert::Batched) {
      for (auto& [route, b] : batches) {
        auto m = std::find(b.members.begin(), b.members.end(), d);
        if (m != b.members.end()) {
          b.members.erase(m);
          if (b.members.empty()) b.flush_at = kNeverDue;
          break;
        }
      }
    }
    if (held) held_problems.try_emplace(d, HeldProblem{a.due - cfg.alert_after.count(), a.flapping});
    devs.erase(it);
    if (held) ++counters.device_alerts_held;
    else ++counters.device_alerts_cancelled;
  }

  void device_problem(const Transition& t) {
    const bool flapping = t.to == State::Flapping;
    if (fleet.held_by(t.device) != 0) {
      if (devs.count(t.device) != 0) cancel(t.device, true);
      else ++counters.device_alerts_held;
      held_problems.try_emplace(t.device, HeldProblem{to_ms(t.at), flapping});
      return;
    }
    auto it = devs.find(t.device);
    if (it != devs.end()) {
      if (it->second.phase != DeviceAlert::Firing) it->second.flapping = flapping;
      return;  // one alert per problem: offline <-> flapping does not page again
    }
    DeviceAlert a;
    a.flapping = flapping;
    a.due = to_ms(t.at) + cfg.alert_after.count();
    if (auto r = released_by.find(t.device); r != released_by.end()) {
      a.after_incident = r->second;
      released_by.erase(r);
    }
    devs.emplace(t.device, a);
    due.insert({a.due, t.device});
  }

  void device_back(DeviceIndex d, std::int64_t at) {
    held_problems.erase(d);
    released_by.erase(d);
    auto it = devs.find(d);
    if (it == devs.end()) return;
    if (it->second.phase != DeviceAlert::Firing) {
      cancel(d, false);
      return;
    }
    const DeviceAlert a = it->second;
    devs.erase(it);
    if (a.group == 0) {
      auto& r = push(AlertIntent::Action::Resolve,
                     a.flapping ? AlertIntent::Type::DeviceFlapping : AlertIntent::Type::DeviceOffline, device_key(d), at);
      r.component = id(d);
      r.summary = clip("device " + id(d) + " is back online", kMaxSummary);
      return;
    }
    // A grouped device coming back resolves nothing on its own: the group resolves when its last
    // member is back (docs/alert-policy.md "Grouped resolves").
    auto g = groups.find(a.group);
    if (g == groups.end()) return;
    if (--g->second.remaining == 0) {
      auto& r = push(AlertIntent::Action::Resolve, AlertIntent::Type::DeviceGroup, g->second.key, at);
      r.group = g->second.route;
      r.summary = clip("all " + std::to_string(g->second.members.size()) + " devices of " + g->second.key +
                           " are back online",
                       kMaxSummary);
      groups.erase(g);
    }
  }

  void process_due(DeviceIndex d, std::int64_t at) {
    auto it = devs.find(d);
    if (it == devs.end()) return;
    auto& a = it->second;
    if (fleet.held_by(d) != 0) {
      cancel(d, true);
      return;
    }
    const char* cls = alert_class(a.flapping ? AlertIntent::Type::DeviceFlapping : AlertIntent::Type::DeviceOffline);
    if (device_silenced(d, cls)) {
      a.phase = DeviceAlert::Silenced;
      ++counters.alerts_silenced;
      return;
    }
    const std::size_t rule = rule_of(d, cls);
    Batch& b = batches[route_of(rule)];
    b.rule = rule;
    if (b.members.empty()) {
      // A new group waits group_wait for company. Not Alertmanager's group_interval after the
      // route's last notification: every member is a device's FIRST page, and waiting up to
      // group_interval (5 min) broke the latency bound (issue 11: pump-hamburg-3 paged 4.9 min
      // after its last sign of life where 2.5 min were documented).
      b.flush_at = at + cfg.group_wait.count();
    }
    b.members.push_back(d);
    a.phase = DeviceAlert::Batched;
  }

  void flush(const std::string& route, Batch& b, std::int64_t at) {
    std::vector<DeviceIndex> send;
    for (DeviceIndex d : b.members) {
      auto it = devs.find(d);
      if (it == devs.end()) continue;
      if (fleet.held_by(d) != 0) {
        held_problems.try_emplace(d, HeldProblem{it->second.due - cfg.alert_after.count(), it->second.flapping});
        devs.erase(it);
        ++counters.device_alerts_held;
        continue;
      }
      const char* cls = alert_class(it->second.flapping ? AlertIntent::Type::DeviceFlapping
                                                        : AlertIntent::Type::DeviceOffline);
      if (device_silenced(d, cls)) {
        it->second.phase = DeviceAlert::Silenced;
        ++counters.alerts_silenced;
        continue;
      }
      send.push_back(d);
    }
    b.members.clear();
    b.flush_at = kNeverDue;
    if (send.empty()) return;
    b.last_flush = at;
    const Severity sev = b.rule < cfg.rules.size() ? cfg.rules[b.rule].severity : cfg.device_severity;
    const bool ruled = b.rule < cfg.rules.size();
    // Group by cause (issue 11): a cohort among the due devices is paged as that cohort; the
    // rest, independent failures, are named one by one ("unrelated" only when no cohort
    // explains them). The demo paged 3 flapping beta-firmware devices and 2 dead gw-200 as
    // "5 unrelated devices down".
    std::vector<DeviceIndex> rest;
    std::map<std::uint32_t, std::vector<DeviceIndex>> after;
    for (DeviceIndex d : send) {
      const std::uint32_t inc = devs[d].after_incident;
      if (inc != 0) after[inc].push_back(d);
      else rest.push_back(d);
    }
    for (auto& [inc, members] : after) {
      CohortPick c;
      auto bs = blip_scope.find(inc);
      c.cause = "still down after the blip in " + (bs != blip_scope.end() ? bs->second : std::string("fleet")) +
                " (incident " + std::to_string(inc) + ")";
      c.members = members;
      if (members.size() == 1) send_one(route, members[0], sev, ruled, at, c.cause);
      else send_group(route, members, sev, ruled, &c, at);
    }
    for (;;) {
      CohortPick c = pick_cohort(rest);
      if (c.members.empty()) break;
      std::vector<DeviceIndex> keep;
      for (DeviceIndex d : rest)
        if (std::find(c.members.begin(), c.members.end(), d) == c.members.end()) keep.push_back(d);
      rest.swap(keep);
      send_group(route, c.members, sev, ruled, &c, at);
    }
    if (rest.size() == 1) {
      send_one(route, rest[0], sev, ruled, at);
    } else if (rest.size() > 1) {
      send_group(route, rest, sev, ruled, nullptr, at);
    }
  }

  // A label value of some of `devices` shared by >= group_cohort_min device problems open now
  // (these and the ones pending or already paged: a flapping cohort becomes due a device or two
  // at a time, one flush would never see three) and over-represented among the open problems
  // against the fleet (lift >= cohort_min_lift). The most open problems first, then the lift.
  struct CohortPick {
    std::string key, value;
    std::uint32_t of = 0;  // devices with this value in the fleet
    std::vector<DeviceIndex> members;  // of `devices`
    std::string cause;  // not a label: "still down after the blip in ..." (after_incident)
  };
  std::map<std::uint32_t, std::string> blip_scope;  // healed incident -> its scope (for the pages)
  std::map<std::string, std::int64_t> last_blip_notice;  // scope -> when its last notice went out
  CohortPick pick_cohort(const std::vector<DeviceIndex>& devices) const {
    CohortPick best;
    if (devices.empty()) return best;
    std::map<std::pair<std::string, std::string>, std::vector<DeviceIndex>> by;
    for (DeviceIndex d : devices)
      for (const auto& [k, v] : fleet.labels(d)) by[{std::string(k), std::string(v)}].push_back(d);
    std::map<std::pair<std::string, std::string>, std::size_t> open;
    for (const auto& [d, a] : devs)
      for (const auto& [k, v] : fleet.labels(d)) {
        auto it = by.find({std::string(k), std::string(v)});
        if (it != by.end()) ++open[it->first];
      }
    const auto all = fleet.segment("", "");
    const double fleet_known = all ? static_cast<double>(all->known) : 0;
    const double problems = static_cast<double>(devs.size());
    double best_lift = 0;
    std::size_t best_open = 0;
    for (auto& [kv, members] : by) {
      const std::size_t n = open[kv];
      if (n < cfg.group_cohort_min || fleet_known <= 0 || problems <= 0) continue;
      const auto seg = fleet.segment(kv.first, kv.second);
      if (!seg || seg->known == 0) continue;
      const double lift = (static_cast<double>(n) / problems) / (seg->known / fleet_known);
      // Twice the incident hint's lift: a handful of independent deaths in a 20 % site are not a
      // "site" cohort by chance (3 of 7 would pass 2.0), a beta firmware at 5 % of the fleet is.
      if (lift < 2 * fleet.config().cohort_min_lift) continue;
      if (n > best_open || (n == best_open && lift > best_lift)) {
        best.key = kv.first;
        best.value = kv.second;
        best.of = seg->known;
        best.members = members;
        best_lift = lift;
        best_open = n;
      }
    }
    return best;
  }

  // Severity follows reality (issue 11) when no rule decides: flapping is a warning (the device
  // is up most of the time), a death is the configured device severity.
  Severity device_sev(Severity configured, bool ruled, bool all_flapping) const {
    if (ruled || !all_flapping) return configured;
    return std::max(configured, Severity::Warning);
  }

  void send_one(const std::string& route, DeviceIndex d, Severity sev, bool ruled, std::int64_t at,
                const std::string& why = {}) {
    auto& a = devs[d];
    a.phase = DeviceAlert::Firing;
    a.group = 0;
    const auto type = a.flapping ? AlertIntent::Type::DeviceFlapping : AlertIntent::Type::DeviceOffline;
    auto& i = push(AlertIntent::Action::Trigger, type, device_key(d), at);
    i.severity = device_sev(sev, ruled, a.flapping);
    i.component = id(d);
    i.group = route;
    std::string labels;
    for (const auto& [k, v] : fleet.labels(d)) labels += (labels.empty() ? "" : ", ") + std::string(k) + "=" + std::string(v);
    i.summary = clip("device " + id(d) + (a.flapping ? " is flapping" : " is offline") +
                         (labels.empty() ? "" : " (" + labels + ")") + (why.empty() ? "" : ", " + why),
                     kMaxSummary);
    if (!why.empty()) i.details.emplace_back("after_incident", why);
    add_labels(i, d);
    describe_parent(i, d);
  }

  void send_group(const std::string& route, const std::vector<DeviceIndex>& fresh, Severity sev, bool ruled,
                  const CohortPick* cohort, std::int64_t at) {
    // A cohort already paged on this route takes its new members: the same dedup_key triggered
    // again with the whole membership (PagerDuty updates the open alert, no second incident).
    const bool cause = cohort != nullptr && !cohort->cause.empty();
    const std::string label = cohort != nullptr ? (cause ? cohort->cause : cohort->key + "=" + cohort->value) : std::string();
    std::uint64_t g = 0;
    if (cohort != nullptr)
      for (const auto& [id, grp] : groups)
        if (grp.cohort == label && grp.route == route && grp.remaining > 0) g = id;
    if (g == 0) {
      g = next_group++;
      Group& grp = groups[g];
      grp.key = group_key(g);
      grp.route = route;
      grp.since = at;
      grp.cohort = label;
    }
    Group& grp = groups[g];
    for (DeviceIndex d : fresh) {
      auto& a = devs[d];
      a.phase = DeviceAlert::Firing;
      a.group = g;
      grp.members.push_back(d);
      ++grp.remaining;
    }
    counters.devices_grouped += fresh.size();
    // The page lists the members still firing in the group.
    std::vector<DeviceIndex> send;
    std::size_t flapping = 0;
    for (DeviceIndex d : grp.members) {
      auto it = devs.find(d);
      if (it == devs.end() || it->second.phase != DeviceAlert::Firing || it->second.group != g) continue;
      send.push_back(d);
      flapping += it->second.flapping;
    }
    std::size_t listed = 0;
    std::string ids = id_list(send, listed);
    const std::string more = listed < send.size() ? " (+" + std::to_string(send.size() - listed) + " more)" : "";
    auto& i = push(AlertIntent::Action::Trigger, AlertIntent::Type::DeviceGroup, grp.key, at);
    i.severity = device_sev(sev, ruled, flapping == send.size());
    i.group = route;
    const std::size_t offline = send.size() - flapping;
    const std::string how = flapping == 0 ? std::string("offline")
                            : offline == 0 ? std::string("flapping")
                                           : "down (" + std::to_string(offline) + " offline, " +
                                                 std::to_string(flapping) + " flapping)";
    if (cause) {
      i.component = route.empty() ? std::string("devices") : route;
      i.summary = clip(std::to_string(send.size()) + " devices " + how + ", " + label + ": " + ids + more, kMaxSummary);
      i.details.emplace_back("after_incident", label);
    } else if (cohort != nullptr) {
      i.component = label;
      i.summary = clip(std::to_string(send.size()) + " of " + std::to_string(cohort->of) + " " + label +
                           " devices " + how + ": " + ids + more,
                       kMaxSummary);
      i.details.emplace_back("cohort", label);
    } else {
      // Independent failures: each named with what it is.
      std::string named;
      std::size_t n = 0;
      for (DeviceIndex d : send) {
        if (n++ == cfg.details_max_devices) break;
        const std::size_t behind = behind_count(d);
        named += (named.empty() ? "" : ", ") + id(d) + (devs[d].flapping ? " (flapping" : " (offline") +
                 (behind == 0 ? std::string(")") : ", " + std::to_string(behind) + " behind it unreachable)");
      }
      i.component = route.empty() ? std::string("devices") : route;
      i.summary = clip(std::to_string(send.size()) + " unrelated devices " + how + ": " + named + more, kMaxSummary);
    }
    i.details.emplace_back("count", std::to_string(send.size()));
    i.details.emplace_back("devices", ids);
    std::size_t behind = 0;
    for (DeviceIndex d : send) behind += behind_count(d);
    if (behind > 0) {
      // Parents among the members (issue 15): what is unreachable behind them is part of the page.
      if (cause || cohort != nullptr)
        i.summary = clip(i.summary + "; " + std::to_string(behind) + " devices behind them unreachable", kMaxSummary);
      i.details.emplace_back("unreachable_behind", std::to_string(behind));
    }
  }

  // --- Fleet incidents -------------------------------------------------------------------------

  static AlertIntent::Type type_of(const Incident& inc) {
    switch (inc.kind) {
      case IncidentKind::Drop: return AlertIntent::Type::FleetIncident;
      case IncidentKind::Storm: return AlertIntent::Type::ReconnectStorm;
      case IncidentKind::Blind: return AlertIntent::Type::Blind;
    }
    return AlertIntent::Type::FleetIncident;
  }

  void fill_incident(AlertIntent& a, const Incident& inc) const {
    const std::size_t rule = rule_of_incident(inc, alert_class(type_of(inc)));
    a.severity = rule < cfg.rules.size() ? cfg.rules[rule].severity : cfg.incident_severity;
    const bool ruled = rule < cfg.rules.size();
    a.group = route_of(rule);
    a.component = scope_text(inc);
    std::string s;
    std::vector<CohortHint> hint = inc.hint;
    if (inc.kind == IncidentKind::Blind) {
      s = "presenced is blind: broker connection lost; device states are unknown, no device is paged";
    } else {
      // The extent now (the page goes out group_wait after open, the resolve at the end): the
      // most held devices down at once, of the segment's devices.
      std::uint32_t count = inc.count, pop = inc.population;
      if (inc.kind == IncidentKind::Drop) {
        count = std::max(inc.count, inc.peak_down);
        if (auto seg = fleet.segment(inc.scope_key, inc.scope_value))
          pop = std::max({pop, seg->up + seg->flapping + inc.still_down, count});
        hint = fleet.cohort(inc.held, inc.scope_key, inc.scope_value);
      }
      const double share = pop == 0 ? 0 : static_cast<double>(count) / pop;
      const char* what = inc.kind == IncidentKind::Drop ? " dropped" : " reconnects/flapping";
      // Kubernetes zone words: full disruption at 100 %, partial at >= 55 % unhealthy.
      const char* level = share >= 1.0 ? "full" : share >= 0.55 ? "partial" : "degraded";
      // Severity follows reality (issue 11) when no rule decides: a fleet-wide or partial/full
      // outage is the configured incident severity (critical); a degraded one narrowed to one
      // segment is a warning. (Healed drops are never paged: see fire_incident.)
      if (!ruled && !inc.scope_key.empty() && share < 0.55) a.severity = std::max(a.severity, Severity::Warning);
      std::uint32_t back = 0;
      if (inc.kind == IncidentKind::Drop) {
        std::vector<DeviceIndex> uniq = inc.held;
        std::sort(uniq.begin(), uniq.end());
        uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
        back = static_cast<std::uint32_t>(uniq.size()) - std::min<std::uint32_t>(inc.still_down, uniq.size());
      }
      s = std::string(inc.kind == IncidentKind::Drop ? "Fleet incident" : "Reconnect storm") + " (" + level + ") in " +
          scope_text(inc) + ": " + std::to_string(count) + what + " of " + std::to_string(pop) + " devices (" +
          pct(share) + ")";
      if (inc.kind == IncidentKind::Drop) s += ", " + std::to_string(back) + " already back";
      if (!hint.empty()) s += "; likely cohort: " + hint_text(hint, scope_text(inc));
      if (!inc.narrowed_from.empty()) s += " (scope narrowed from " + inc.narrowed_from + ")";
      if (inc.kind == IncidentKind::Drop) a.details.emplace_back("already_back", std::to_string(back));
      if (!inc.narrowed_from.empty()) a.details.emplace_back("narrowed_from", inc.narrowed_from);
      a.details.emplace_back("count", std::to_string(count));
      a.details.emplace_back("population", std::to_string(pop));
      a.details.emplace_back("share", fixed(share, 4));
      a.details.emplace_back("count_at_open", std::to_string(inc.count));
      a.details.emplace_back("disruption", level);
      a.details.emplace_back("held", std::to_string(inc.held.size()));
      a.details.emplace_back("still_down", std::to_string(inc.still_down));
      if (!inc.widened_from.empty()) a.details.emplace_back("widened_from", inc.widened_from);
    }
    a.summary = clip(s, kMaxSummary);
    a.details.emplace_back("incident", std::to_string(inc.id));
    a.details.emplace_back("scope", scope_text(inc));
    a.details.emplace_back("started_ms", std::to_string(to_ms(inc.opened_at)));
    for (std::size_t i = 0; i < hint.size(); ++i) {
      const auto& h = hint[i];
      a.details.emplace_back("cohort_" + std::to_string(i + 1),
                             h.key + "=" + h.value + " support=" + std::to_string(h.support) +
                                 " lift=" + fixed(h.lift, 2));
    }
  }

  void fire_incident(const Incident& inc, IncidentAlert& ia, std::int64_t at) {
    if (incident_silenced(inc, alert_class(type_of(inc)), inc.held)) {
      if (ia.incident != IncidentAlert::Silenced) ++counters.alerts_silenced;
      ia.incident = IncidentAlert::Silenced;
      return;
    }
    ia.incident = IncidentAlert::Firing;
    ia.incident_since = at;
    auto& a = push(AlertIntent::Action::Trigger, type_of(inc), incident_key(inc), at);
    fill_incident(a, inc);
  }

  void fire_stragglers(const Incident& inc, IncidentAlert& ia, std::int64_t at) {
    if (incident_silenced(inc, alert_class(AlertIntent::Type::Stragglers), inc.stragglers)) {
      if (ia.stragglers != IncidentAlert::Silenced) ++counters.alerts_silenced;
      ia.stragglers = IncidentAlert::Silenced;
      return;
    }
    ia.stragglers = IncidentAlert::Firing;
    ia.stragglers_since = at;
    std::size_t listed = 0;
    std::string ids = id_list(inc.stragglers, listed);
    auto& a = push(AlertIntent::Action::Trigger, AlertIntent::Type::Stragglers, straggler_key(inc.id), at);
    a.severity = cfg.straggler_severity;
    a.component = scope_text(inc);
    a.summary = clip(std::to_string(inc.stragglers.size()) + " devices never came back after " + to_string(inc.kind) +
                         " incident " + std::to_string(inc.id) + " in " + scope_text(inc) + ": " + ids +
                         (listed < inc.stragglers.size() ? " (+" + std::to_string(inc.stragglers.size() - listed) + " more)" : "") +
                         (inc.hint.empty() ? "" : "; common: " + hint_text(inc.hint, scope_text(inc))),
                     kMaxSummary);
    a.details.emplace_back("incident", std::to_string(inc.id));
    a.details.emplace_back("scope", scope_text(inc));
    a.details.emplace_back("count", std::to_string(inc.stragglers.size()));
    a.details.emplace_back("devices", ids);
  }

  void on_fleet_event(const IncidentEvent& e) {
    const Incident* inc = fleet.incident(e.incident);
    if (inc == nullptr) return;
    const std::int64_t at = to_ms(e.at);
    IncidentAlert& ia = incs[e.incident];
    switch (e.kind) {
      case IncidentEvent::Kind::Opened:
        for (DeviceIndex d : inc->held) cancel(d, true);
        // Blind pages after blind_alert_after; a drop or storm after group_wait, like any new
        // group, so the page describes the burst (count, share, cohort) rather than its first
        // seconds.
        ia.incident = IncidentAlert::Waiting;
        ia.due = at + (inc->kind == IncidentKind::Blind ? cfg.blind_alert_after : cfg.group_wait).count();
        break;
      case IncidentEvent::Kind::Resolved:
        if (ia.incident == IncidentAlert::Firing) {
          auto& a = push(AlertIntent::Action::Resolve, type_of(*inc), incident_key(*inc), at);
          fill_incident(a, *inc);
        }
        ia.incident = IncidentAlert::Done;
        ia.due = kNeverDue;
        break;
      case IncidentEvent::Kind::Stragglers:
        if (ia.incident == IncidentAlert::Firing) {  // defensive: never leave the incident firing
          push(AlertIntent::Action::Resolve, type_of(*inc), incident_key(*inc), at);
          ia.incident = IncidentAlert::Done;
        }
        fire_stragglers(*inc, ia, at);
        break;
      case IncidentEvent::Kind::Closed:
        if (ia.incident == IncidentAlert::Firing)
          push(AlertIntent::Action::Resolve, type_of(*inc), incident_key(*inc), at);
        if (ia.stragglers == IncidentAlert::Firing) {
          auto& a = push(AlertIntent::Action::Resolve, AlertIntent::Type::Stragglers, straggler_key(inc->id), at);
          a.component = scope_text(*inc);
          a.summary = "all stragglers of incident " + std::to_string(inc->id) + " are back online";
        }
        incs.erase(e.incident);
        break;
    }
  }

  void pump_fleet() {
    std::vector<IncidentEvent> ev;
    fleet.drain(ev);
    for (const auto& e : ev) on_fleet_event(e);
  }

  // --- Time ------------------------------------------------------------------------------------

  // Blind or in restart grace: device evidence is not trustworthy, device alerts wait. The instant
  // sight returns counts too: the engine starts its restart grace right after (same time).
  bool deferred(std::int64_t t) const { return fleet.blind() || fleet.in_restart_grace() || t <= unblind_at; }
  std::int64_t unblind_at = std::numeric_limits<std::int64_t>::min();

  // Processes everything due at or before t, in time order (ties: silence ends, incident pages,
  // device dues, then group flushes), so a coarse tick decides exactly like a fine one.
  void run_until(std::int64_t t) {
    for (;;) {
      std::int64_t t_sil = kNeverDue, t_inc = kNeverDue, t_due = kNeverDue, t_flush = kNeverDue, t_ret = kNeverDue;
      for (const auto& s : silences) t_sil = std::min(t_sil, to_ms(s.ends_at));
      for (const auto& [n, r] : returns)
        if (!r.firing) t_ret = std::min(t_ret, r.due);
      for (const auto& [id, ia] : incs)
        if (ia.incident == IncidentAlert::Waiting) t_inc = std::min(t_inc, ia.due);
      const bool wait = deferred(t);
      if (!wait && !due.empty()) t_due = std::max(due.begin()->first, resume_at);
      if (!wait)
        for (const auto& [route, b] : batches) t_flush = std::min(t_flush, std::max(b.flush_at, resume_at));
      const std::int64_t next = std::min({t_sil, t_inc, t_due, t_flush, t_ret});
      if (next > t || next == kNeverDue) break;
      now = std::max(now, next);
      if (next == t_sil) {
        expire_silences(next);
      } else if (next == t_ret) {
        std::vector<std::uint64_t> ready;
        for (const auto& [n, r] : returns)
          if (!r.firing && r.due == next) ready.push_back(n);
        for (std::uint64_t n : ready) fire_return(n, next);
      } else if (next == t_inc) {
        for (auto& [id, ia] : incs) {
          if (ia.incident != IncidentAlert::Waiting || ia.due != next) continue;
          ia.due = kNeverDue;
          const Incident* inc = fleet.incident(id);
          if (inc != nullptr && inc->stage == IncidentStage::Open && fleet.healed(id)) healed_ids.push_back(id);
          else if (inc != nullptr && inc->stage == IncidentStage::Open) fire_incident(*inc, ia, next);
          else ia.incident = IncidentAlert::Done;
        }
        // After the loop: dismissing closes the incident and erases its entry in incs.
        for (std::uint32_t id : healed_ids) blip(id, next);
        healed_ids.clear();
      } else if (next == t_due) {
        auto [when, d] = *due.begin();
        due.erase(due.begin());
        process_due(d, std::max(when, resume_at));
      } else {
        for (auto& [route, b] : batches)
          if (std::max(b.flush_at, resume_at) == next && b.flush_at != kNeverDue) flush(route, b, next);
      }
    }
    now = std::max(now, t);
  }

  std::vector<std::uint32_t> healed_ids;

  // Issue 11, "healed drops do not page": the incident's page is due but fewer than its open
  // floor/fraction are still down (the demo's site-b load balancer: 17 of 18 back within about a
  // second, yet a critical "Fleet incident" page). No PagerDuty trigger: an info Notify for
  // Slack/webhook, the incident recorded (closed, `healed`), and the devices it still held
  // released to their own clocks, so a device that really died inside the blip is still paged
  // within the latency bound.
  void blip(std::uint32_t id, std::int64_t at) {
    const Incident* inc = fleet.incident(id);
    if (inc == nullptr) return;
    std::vector<DeviceIndex> uniq = inc->held;
    std::sort(uniq.begin(), uniq.end());
    uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
    const std::uint32_t dropped = std::max<std::uint32_t>({inc->count, inc->peak_down, static_cast<std::uint32_t>(uniq.size())});
    const std::uint32_t down = inc->still_down;
    const std::uint32_t back = static_cast<std::uint32_t>(uniq.size()) - std::min<std::uint32_t>(down, uniq.size());
    const std::string scope = scope_text(*inc);
    const std::vector<CohortHint> hint = fleet.cohort(inc->held, inc->scope_key, inc->scope_value);
    const double secs = static_cast<double>(at - to_ms(inc->opened_at)) / 1000.0;
    blip_scope[id] = scope;
    // One notice per scope per incident_window: a cohort that blips every few seconds (003's
    // flapping firmware) is one line in Slack, not one every burst. Each is still logged.
    auto last = last_blip_notice.find(scope);
    const bool repeat = last != last_blip_notice.end() && at < last->second + fleet.config().incident_window.count();
    if (!repeat && !incident_silenced(*inc, alert_class(AlertIntent::Type::FleetIncident), inc->held)) {
      last_blip_notice[scope] = at;
      auto& a = push(AlertIntent::Action::Notify, AlertIntent::Type::FleetIncident, incident_key(*inc), at);
      a.severity = Severity::Info;
      a.component = scope;
      a.group = route_of(rule_of_incident(*inc, alert_class(AlertIntent::Type::FleetIncident)));
      a.summary = clip("Blip in " + scope + ": " + std::to_string(dropped) + " devices dropped, " + std::to_string(back) +
                           " were back within " + fixed(secs, 1) + " s" +
                           (down > 0 ? ", " + std::to_string(down) + " still down (paged on their own if they stay down)"
                                     : "") +
                           "; not paged" + (hint.empty() ? "" : "; likely cohort: " + hint_text(hint, scope)),
                       kMaxSummary);
      a.details.emplace_back("incident", std::to_string(inc->id));
      a.details.emplace_back("scope", scope);
      a.details.emplace_back("count", std::to_string(dropped));
      a.details.emplace_back("already_back", std::to_string(back));
      a.details.emplace_back("still_down", std::to_string(down));
      a.details.emplace_back("healed", "true");
      if (!inc->narrowed_from.empty()) a.details.emplace_back("narrowed_from", inc->narrowed_from);
    }
    ++counters.incidents_healed;
    incs.erase(id);
    for (DeviceIndex d : fleet.dismiss(id, mono_ms(at))) {
      auto hp = held_problems.find(d);
      if (hp == held_problems.end() || devs.count(d) != 0) {  // still suspect: pages later if it stays down
        if (devs.count(d) == 0) released_by[d] = id;
        continue;
      }
      DeviceAlert a;
      a.flapping = hp->second.flapping;
      a.after_incident = id;
      a.due = std::max(at, hp->second.since + cfg.alert_after.count());
      held_problems.erase(hp);
      devs.emplace(d, a);
      due.insert({a.due, d});
    }
    pump_fleet();
  }

  // A silence ended (or was removed): what it held back is decided again now.
  void expire_silences(std::int64_t at) {
    std::erase_if(silences, [at](const Silence& s) { return to_ms(s.ends_at) <= at; });
    reconsider(at);
  }

  void reconsider(std::int64_t at) {
    for (auto& [d, a] : devs) {
      if (a.phase != DeviceAlert::Silenced) continue;
      a.phase = DeviceAlert::Pending;
      a.due = at;
      due.insert({at, d});
    }
    for (auto& [id, ia] : incs) {
      const Incident* inc = fleet.incident(id);
      if (inc == nullptr) continue;
      if (ia.incident == IncidentAlert::Silenced && inc->stage == IncidentStage::Open) fire_incident(*inc, ia, at);
      if (ia.stragglers == IncidentAlert::Silenced && inc->stage == IncidentStage::Stragglers)
        fire_stragglers(*inc, ia, at);
    }
  }
};

AlertPolicy::AlertPolicy(PolicyConfig policy, FleetConfig fleet, IdOf id_of)
    : impl_(std::make_unique<Impl>(std::move(policy), std::move(fleet), std::move(id_of))) {}
AlertPolicy::~AlertPolicy() = default;

FleetMonitor& AlertPolicy::fleet() { return impl_->fleet; }
const FleetMonitor& AlertPolicy::fleet() const { return impl_->fleet; }
const PolicyConfig& AlertPolicy::config() const { return impl_->cfg; }

void AlertPolicy::on_label(DeviceIndex device, std::string_view key, std::string_view value) {
  impl_->fleet.set_label(device, key, value);
  if (!impl_->cfg.parent_label.empty() && key == impl_->cfg.parent_label) impl_->set_parent_label(device, value);
}

void AlertPolicy::on_transition(const Transition& t) {
  auto& m = *impl_;
  const std::int64_t at = std::max(m.now, to_ms(t.at));
  m.run_until(at);  // what was due before this transition happens first
  if (t.device != kNoDevice && !m.topo.empty() && m.topology_step(t, at)) return;
  m.fleet.on_transition(t);
  m.pump_fleet();
  if (t.device == kNoDevice) return;
  switch (t.to) {
    case State::Offline:
    case State::Flapping:
      // A state known only from retained messages or a snapshot (cause Resync) is not a new
      // failure: paging every long-dead device at startup would be the page storm this policy
      // exists to prevent. Such devices are visible in the API; they page once they were seen
      // online and fail again.
      if (t.cause == Cause::Resync && m.devs.count(t.device) == 0) break;
      m.device_problem(t);
      break;
    case State::Online:
    case State::Unknown: m.device_back(t.device, at); break;
    case State::Suspect: break;  // not yet a problem: offline_grace decides
  }
}

bool AlertPolicy::may_forget(DeviceIndex device) const {
  const auto& m = *impl_;
  if (m.fleet.held_by(device) != 0) return false;
  if (m.straggling.count(device) != 0) return false;
  auto it = m.devs.find(device);
  return it == m.devs.end() || it->second.phase != Impl::DeviceAlert::Firing;
}

void AlertPolicy::on_forget(DeviceIndex device) {
  auto& m = *impl_;
  m.cancel(device, /*held=*/false);
  m.fleet.forget(device);
  if (!m.topo.empty()) {
    m.unreach.erase(device);
    m.topo.forget(m.id(device));
  }
}

void AlertPolicy::on_connect(DeviceIndex device, MonoTime at) {
  auto& m = *impl_;
  m.run_until(std::max(m.now, to_ms(at)));
  m.fleet.on_connect(device, at);
  m.pump_fleet();
}

void AlertPolicy::on_blind(bool blind, MonoTime at) {
  auto& m = *impl_;
  const std::int64_t t = std::max(m.now, to_ms(at));
  m.run_until(t);
  m.fleet.set_blind(blind, at);
  if (!blind) m.unblind_at = t;
  if (!m.fleet.blind() && !m.fleet.in_restart_grace()) m.resume_at = t;
  m.pump_fleet();
}

void AlertPolicy::on_restart_grace(bool active, MonoTime at) {
  auto& m = *impl_;
  const std::int64_t t = std::max(m.now, to_ms(at));
  m.run_until(t);
  m.fleet.set_restart_grace(active, at);
  if (!m.fleet.blind() && !m.fleet.in_restart_grace()) m.resume_at = t;
  m.pump_fleet();
}

void AlertPolicy::on_tick(MonoTime now) {
  auto& m = *impl_;
  const std::int64_t t = std::max(m.now, to_ms(now));
  m.fleet.tick(now);
  m.pump_fleet();
  m.run_until(t);
}

void AlertPolicy::drain_alerts(std::vector<AlertIntent>& out) {
  auto& o = impl_->out;
  out.insert(out.end(), std::make_move_iterator(o.begin()), std::make_move_iterator(o.end()));
  o.clear();
}

std::uint64_t AlertPolicy::add_silence(Silence silence) {
  auto& m = *impl_;
  if (silence.ends_at <= silence.starts_at) return 0;
  silence.id = m.next_silence++;
  m.silences.push_back(std::move(silence));
  return m.silences.back().id;
}

bool AlertPolicy::remove_silence(std::uint64_t id, MonoTime now) {
  auto& m = *impl_;
  const std::int64_t t = std::max(m.now, to_ms(now));
  m.run_until(t);
  auto n = std::erase_if(m.silences, [id](const Silence& s) { return s.id == id; });
  if (n == 0) return false;
  m.reconsider(t);
  m.run_until(t);
  return true;
}

std::vector<Silence> AlertPolicy::silences() const { return impl_->silences; }

bool AlertPolicy::device_page_open(DeviceIndex device) const {
  auto it = impl_->devs.find(device);
  return it != impl_->devs.end() && it->second.phase == Impl::DeviceAlert::Firing;
}

AlertPolicy::AdoptCounts AlertPolicy::adopt_open_pages(const std::vector<AdoptedPage>& pages,
                                                       MonoTime now_time) {
  auto& m = *impl_;
  const std::int64_t t = std::max(m.now, to_ms(now_time));
  m.run_until(t);
  AdoptCounts n;
  for (const auto& p : pages) {
    if (p.device == kNoDevice) continue;
    auto it = m.devs.find(p.device);
    if (it != m.devs.end() && it->second.phase == Impl::DeviceAlert::Firing) {
      ++n.already;
      continue;
    }
    // A page of ours not sent yet is the one the dead leader sent: take it back (cancel) and
    // make it firing, so it is not triggered a second time when it comes due.
    bool flapping = p.state == State::Flapping;
    if (it != m.devs.end()) {
      flapping = flapping || it->second.flapping;
      m.cancel(p.device, /*held=*/false);
      --m.counters.device_alerts_cancelled;  // not cancelled: adopted
    }
    m.held_problems.erase(p.device);
    m.released_by.erase(p.device);
    Impl::DeviceAlert a;
    a.phase = Impl::DeviceAlert::Firing;
    a.flapping = flapping;
    a.due = kNeverDue;
    m.devs.emplace(p.device, a);
    if (p.state == State::Online || p.state == State::Unknown) {
      // Back already (it returned while the dead leader led, or while we warmed up): the resolve
      // nobody decided, decided now, once. device_back erases the page.
      m.device_back(p.device, t);
      ++n.resolved;
    } else {
      ++n.firing;
    }
  }
  m.now = std::max(m.now, t);
  return n;
}

std::vector<FiringAlert> AlertPolicy::firing() const {
  const auto& m = *impl_;
  std::vector<FiringAlert> out;
  for (const auto& [d, a] : m.devs) {
    if (a.phase != Impl::DeviceAlert::Firing || a.group != 0) continue;
    FiringAlert f;
    f.dedup_key = m.device_key(d);
    f.type = a.flapping ? AlertIntent::Type::DeviceFlapping : AlertIntent::Type::DeviceOffline;
    f.devices = {d};
    out.push_back(std::move(f));
  }
  for (const auto& [g, grp] : m.groups) {
    FiringAlert f;
    f.dedup_key = grp.key;
    f.type = AlertIntent::Type::DeviceGroup;
    f.since = mono_ms(grp.since);
    for (DeviceIndex d : grp.members) {
      auto it = m.devs.find(d);
      if (it != m.devs.end() && it->second.phase == Impl::DeviceAlert::Firing && it->second.group == g)
        f.devices.push_back(d);
    }
    out.push_back(std::move(f));
  }
  for (const auto& [id, ia] : m.incs) {
    const Incident* inc = m.fleet.incident(id);
    if (inc == nullptr) continue;
    if (ia.incident == Impl::IncidentAlert::Firing) {
      FiringAlert f;
      f.dedup_key = Impl::incident_key(*inc);
      f.type = Impl::type_of(*inc);
      f.since = mono_ms(ia.incident_since);
      f.incident = id;
      out.push_back(std::move(f));
    }
    if (ia.stragglers == Impl::IncidentAlert::Firing) {
      FiringAlert f;
      f.dedup_key = Impl::straggler_key(id);
      f.type = AlertIntent::Type::Stragglers;
      f.since = mono_ms(ia.stragglers_since);
      f.incident = id;
      for (DeviceIndex d : inc->stragglers)
        if (m.fleet.held_by(d) == id) f.devices.push_back(d);
      out.push_back(std::move(f));
    }
  }
  return out;
}

std::size_t AlertPolicy::pending() const {
  std::size_t n = 0;
  for (const auto& [d, a] : impl_->devs) n += a.phase != Impl::DeviceAlert::Firing;
  return n;
}

std::vector<DeviceIndex> AlertPolicy::held(std::uint32_t incident) const {
  std::vector<DeviceIndex> out;
  const Incident* inc = impl_->fleet.incident(incident);
  if (inc == nullptr) return out;
  for (DeviceIndex d : inc->held)
    if (impl_->fleet.held_by(d) == incident) out.push_back(d);
  return out;
}

std::vector<DeviceIndex> AlertPolicy::stragglers(std::uint32_t incident) const {
  const Incident* inc = impl_->fleet.incident(incident);
  return inc == nullptr ? std::vector<DeviceIndex>{} : inc->stragglers;
}

PolicyCounters AlertPolicy::counters() const { return impl_->counters; }

const Topology& AlertPolicy::topology() const { return impl_->topo; }

std::string AlertPolicy::unreachable_behind(DeviceIndex device) const {
  if (impl_->topo.empty()) return {};
  return impl_->topo.down_ancestor(impl_->id(device));
}

std::size_t AlertPolicy::unreachable() const { return impl_->unreach.size(); }

std::vector<std::string> AlertPolicy::drain_topology_errors() {
  std::vector<std::string> out;
  out.swap(impl_->topo_errors);
  return out;
}

void AlertPolicy::resync(const Engine& engine) {
  for (DeviceIndex d = 0; d < engine.size(); ++d) impl_->fleet.resync(d, engine.view(d).state);
  // Parent links live in labels (PolicyConfig::parent_label): restored with the engine's labels,
  // so no snapshot format change. Parents restored down are down (their subtree unreachable).
  if (impl_->cfg.parent_label.empty()) return;
  for (DeviceIndex d = 0; d < engine.size(); ++d) {
    if (!engine.known(d)) continue;
    for (const auto& [k, v] : engine.labels(d))
      if (k == impl_->cfg.parent_label) impl_->set_parent_label(d, v);
  }
  for (DeviceIndex d = 0; d < engine.size(); ++d) {
    if (!engine.known(d)) continue;
    const State st = engine.view(d).state;
    const std::string me = impl_->id(d);
    if ((st == State::Suspect || st == State::Offline) && impl_->topo.has_children(me)) impl_->topo.set_down(me, true);
  }
}

}  // namespace presence::core

namespace presence::core {

std::string AlertPolicy::serialize() const { return to_text(snapshot()); }

// What is saved; the text format is policy_snapshot.cpp's.
PolicySnapshot AlertPolicy::snapshot() const {
  return snapshot([this](DeviceIndex d) { return impl_->id(d); });
}

PolicySnapshot AlertPolicy::snapshot(const IdOf& id_of) const {
  const auto& m = *impl_;
  PolicySnapshot snap;
  snap.saved_at_ms = std::max<std::int64_t>(m.now, to_ms(m.fleet.now()));
  snap.next_group = m.next_group;
  snap.next_silence = m.next_silence;
  snap.silences = m.silences;
  for (const auto& [d, a] : m.devs)
    snap.devices.push_back({id_of(d), static_cast<std::uint8_t>(a.phase), a.flapping, a.due, a.group});
  for (const auto& [g, grp] : m.groups) {
    PolicySnapshot::Group out{g, grp.key, grp.route, grp.since, {}};
    for (DeviceIndex d : grp.members) {
      auto it = m.devs.find(d);
      if (it != m.devs.end() && it->second.phase == Impl::DeviceAlert::Firing && it->second.group == g)
        out.members.push_back(id_of(d));
    }
    snap.groups.push_back(std::move(out));
  }
  for (const auto& [id, ia] : m.incs)
    snap.incident_pages.push_back({id, static_cast<std::uint8_t>(ia.incident),
                                   static_cast<std::uint8_t>(ia.stragglers), ia.due, ia.incident_since,
                                   ia.stragglers_since});
  for (const auto& [d, h] : m.held_problems) snap.held.push_back({id_of(d), h.since, h.flapping});
  snap.fleet = m.fleet.snapshot(id_of);
  return snap;
}

std::size_t AlertPolicy::replay_sent(const std::vector<AlertIntent>& sent, PolicySnapshot& policy,
                                     std::vector<DeviceSnapshot>& devices, std::size_t* skipped,
                                     std::vector<AlertIntent>* resolve_now) {
  std::unordered_map<std::string, std::size_t> device_at;
  for (std::size_t i = 0; i < devices.size(); ++i) device_at.emplace(devices[i].id, i);
  auto set_state = [&](const std::string& id, bool up, bool flapping) {
    auto it = device_at.find(id);
    if (it == device_at.end()) return;
    State& st = devices[it->second].state;
    if (up) {
      if (st != State::Online && st != State::Unknown) st = State::Online;
    } else if (st != State::Offline && st != State::Flapping) {
      st = flapping ? State::Flapping : State::Offline;
    }
  };
  // The number after a "<prefix><n>" key, or false.
  auto key_number = [](const std::string& key, std::string_view prefix, std::uint32_t& n) {
    if (key.rfind(prefix, 0) != 0) return false;
    return snapshot_text::number(std::string_view(key).substr(prefix.size()), n);
  };
  // Pages opened after the snapshot that it has no record of, by key (resolved now unless a later
  // resolve in `sent` closed them).
  std::map<std::string, AlertIntent> untracked;
  std::size_t applied = 0, not_applied = 0;
  for (const auto& in : sent) {
    const bool trigger = in.action == AlertIntent::Action::Trigger;
    if (in.action != AlertIntent::Action::Trigger && in.action != AlertIntent::Action::Resolve) {
      ++not_applied;
      continue;
    }
    switch (in.type) {
      case AlertIntent::Type::DeviceOffline:
      case AlertIntent::Type::DeviceFlapping: {
        const std::string& id = in.component;
        if (id.empty()) {
          ++not_applied;
          break;
        }
        const bool flapping = in.type == AlertIntent::Type::DeviceFlapping;
        std::erase_if(policy.devices, [&](const PolicySnapshot::Device& d) { return d.id == id; });
        if (trigger) {
          PolicySnapshot::Device d;
          d.id = id;
          d.phase = 3;  // firing, alone
          d.flapping = flapping;
          d.due_ms = kNeverDue;
          policy.devices.push_back(std::move(d));
        }
        set_state(id, !trigger, flapping);
        ++applied;
        break;
      }
      case AlertIntent::Type::DeviceGroup: {
        std::uint32_t n = 0;
        if (key_number(in.dedup_key, "presence/group/", n))
          policy.next_group = std::max<std::uint64_t>(policy.next_group, std::uint64_t{n} + 1);
        auto g = std::find_if(policy.groups.begin(), policy.groups.end(),
                              [&](const PolicySnapshot::Group& x) { return x.key == in.dedup_key; });
        if (trigger && g == policy.groups.end() && n != 0) {
          // Rebuilt from its details: "devices" lists the members (all of them up to
          // details_max_devices; the rest cannot be known and resolve on their own later).
          PolicySnapshot::Group grp;
          grp.id = n;
          grp.key = in.dedup_key;
          grp.route = in.group;
          grp.since_ms = policy.saved_at_ms;
          for (const auto& [k, v] : in.details) {
            if (k != "devices") continue;
            std::size_t start = 0;
            while (start <= v.size()) {
              const std::size_t comma = std::min(v.find(',', start), v.size());
              if (comma > start) grp.members.push_back(v.substr(start, comma - start));
              start = comma + 1;
            }
          }
          if (grp.members.empty()) {
            untracked[in.dedup_key] = in;
            ++not_applied;
            break;
          }
          for (const auto& id : grp.members) {
            std::erase_if(policy.devices, [&](const PolicySnapshot::Device& d) { return d.id == id; });
            PolicySnapshot::Device d;
            d.id = id;
            d.phase = 3;
            d.due_ms = kNeverDue;
            d.group = n;
            policy.devices.push_back(std::move(d));
            set_state(id, false, false);
          }
          policy.groups.push_back(std::move(grp));
          ++applied;
          break;
        }
        if (trigger || g == policy.groups.end()) {
          if (!trigger) untracked.erase(in.dedup_key);
          ++not_applied;
          break;
        }
        const std::uint64_t gid = g->id;
        for (const auto& id : g->members) set_state(id, true, false);
        std::erase_if(policy.devices, [&](const PolicySnapshot::Device& d) {
          return d.phase == 3 && d.group == gid;
        });
        policy.groups.erase(g);
        ++applied;
        break;
      }
      default: {
        std::uint32_t n = 0;
        const bool stragglers = key_number(in.dedup_key, "presence/stragglers/", n);
        if (!stragglers && !key_number(in.dedup_key, "presence/incident/", n) &&
            !key_number(in.dedup_key, "presence/blind/", n)) {
          ++not_applied;
          break;
        }
        policy.fleet.next_id = std::max(policy.fleet.next_id, n + 1);
        auto p = std::find_if(policy.incident_pages.begin(), policy.incident_pages.end(),
                              [&](const PolicySnapshot::IncidentPage& x) { return x.incident == n; });
        if (p == policy.incident_pages.end()) {
          if (trigger) untracked[in.dedup_key] = in;
          else untracked.erase(in.dedup_key);
          ++not_applied;
          break;
        }
        (stragglers ? p->stragglers_phase : p->incident_phase) = trigger ? 2 : 3;
        ++applied;
        break;
      }
    }
  }
  if (resolve_now != nullptr) {
    for (auto& [key, in] : untracked) {
      AlertIntent r;
      r.action = AlertIntent::Action::Resolve;
      r.type = in.type;
      r.dedup_key = key;
      r.component = in.component;
      r.group = in.group;
      r.summary = "presenced restarted and no longer tracks this page; it pages again if the "
                  "problem persists";
      resolve_now->push_back(std::move(r));
    }
  }
  if (skipped != nullptr) *skipped = not_applied;
  return applied;
}

void AlertPolicy::restore(const PolicySnapshot& snap, MonoTime now_time,
                          const std::function<DeviceIndex(std::string_view)>& intern) {
  auto& m = *impl_;
  const std::int64_t now = std::max(m.now, to_ms(now_time));
  const std::int64_t shift = sub_sat(now, snap.saved_at_ms);
  auto rebase = [shift](std::int64_t t) { return t == kNeverDue ? kNeverDue : add_sat(t, shift); };
  m.fleet.restore(snap.fleet, now_time, intern);
  for (const auto& s : snap.silences) {
    Silence c = s;
    c.starts_at = mono_ms(rebase(to_ms(s.starts_at)));
    c.ends_at = mono_ms(rebase(to_ms(s.ends_at)));
    if (c.ends_at <= c.starts_at) continue;
    m.next_silence = std::max(m.next_silence, c.id + 1);
    m.silences.push_back(std::move(c));
  }
  m.next_silence = std::max(m.next_silence, snap.next_silence);
  for (const auto& g : snap.groups) {
    if (m.groups.count(g.id) != 0) continue;
    Impl::Group grp;
    grp.key = g.key;
    grp.route = g.route;
    grp.since = rebase(g.since_ms);
    for (const auto& id : g.members) {
      DeviceIndex d = intern(id);
      if (d != kNoDevice) grp.members.push_back(d);
    }
    grp.remaining = grp.members.size();
    if (grp.remaining == 0) continue;
    m.next_group = std::max(m.next_group, g.id + 1);
    m.groups.emplace(g.id, std::move(grp));
  }
  m.next_group = std::max(m.next_group, snap.next_group);
  for (const auto& sd : snap.devices) {
    DeviceIndex d = intern(sd.id);
    if (d == kNoDevice || m.devs.count(d) != 0) continue;
    Impl::DeviceAlert a;
    a.flapping = sd.flapping;
    if (sd.phase == Impl::DeviceAlert::Firing) {
      a.phase = Impl::DeviceAlert::Firing;
      a.group = sd.group;
      if (a.group != 0 && m.groups.count(a.group) == 0) a.group = 0;  // its group is gone: resolve alone
      a.due = kNeverDue;
      m.devs.emplace(d, a);
      continue;
    }
    // Not yet sent: decided again (silences and holds may have changed), never lost.
    a.phase = Impl::DeviceAlert::Pending;
    a.due = std::max(rebase(sd.due_ms == kNeverDue ? now : sd.due_ms), now);
    m.devs.emplace(d, a);
    m.due.insert({a.due, d});
  }
  // A group resolves when its last firing member is back: count only members restored as firing
  // in it (a damaged snapshot must not leave a group that can never resolve).
  for (auto it = m.groups.begin(); it != m.groups.end();) {
    std::size_t firing = 0;
    for (DeviceIndex d : it->second.members) {
      auto a = m.devs.find(d);
      firing += a != m.devs.end() && a->second.phase == Impl::DeviceAlert::Firing && a->second.group == it->first;
    }
    it->second.remaining = firing;
    if (firing == 0) {
      m.push(AlertIntent::Action::Resolve, AlertIntent::Type::DeviceGroup, it->second.key, now);
      it = m.groups.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& h : snap.held) {
    DeviceIndex d = intern(h.id);
    if (d != kNoDevice) m.held_problems.try_emplace(d, Impl::HeldProblem{rebase(h.since_ms), h.flapping});
  }
  for (const auto& p : snap.incident_pages) {
    if (m.incs.count(p.incident) != 0 || m.fleet.incident(p.incident) == nullptr) continue;
    Impl::IncidentAlert ia;
    ia.incident = static_cast<Impl::IncidentAlert::Phase>(p.incident_phase);
    ia.stragglers = static_cast<Impl::IncidentAlert::Phase>(p.stragglers_phase);
    ia.due = ia.incident == Impl::IncidentAlert::Waiting ? std::max(rebase(p.due_ms == kNeverDue ? now : p.due_ms), now)
                                                         : kNeverDue;
    ia.incident_since = rebase(p.incident_since_ms);
    ia.stragglers_since = rebase(p.stragglers_since_ms);
    m.incs.emplace(p.incident, ia);
    // A Blind incident cannot survive a restart (the fleet monitor restores it as recovering):
    // its page resolves now.
    const Incident* inc = m.fleet.incident(p.incident);
    if (ia.incident == Impl::IncidentAlert::Firing && inc->stage != IncidentStage::Open) {
      m.push(AlertIntent::Action::Resolve, Impl::type_of(*inc), Impl::incident_key(*inc), now);
      m.incs[p.incident].incident = Impl::IncidentAlert::Done;
    }
  }
  m.now = std::max(m.now, now);
}

}  // namespace presence::core
