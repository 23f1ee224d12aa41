#include "presence/core/fleet.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <unordered_map>

#include "presence/core/words.h"

namespace presence::core {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void threshold_problems(const FleetThresholds& t, const std::string& at,
                        std::vector<ConfigProblem>& out) {
  auto problem = [&](bool ok, const char* key, std::string reason) {
    if (!ok) out.push_back({at + key, std::move(reason), {}});
  };
  auto share = [&](double v, const char* key) {
    problem(v > 0 && v <= 1, key, "must be in (0, 1], got " + number(v));
  };
  problem(t.incident_open_floor >= 1, "incident_open_floor", "must be at least 1");
  share(t.incident_open_fraction, "incident_open_fraction");
  problem(t.incident_close_fraction > 0 && t.incident_close_fraction <= t.incident_open_fraction,
          "incident_close_fraction", "must be in (0, " + at + "incident_open_fraction]");
  share(t.incident_recovered_share, "incident_recovered_share");
  problem(t.storm_open_floor >= 1, "storm_open_floor", "must be at least 1");
  share(t.storm_open_fraction, "storm_open_fraction");
  problem(t.storm_open_factor >= 1, "storm_open_factor",
          "must be at least 1, got " + number(t.storm_open_factor));
  problem(t.storm_flapping_floor >= 1, "storm_flapping_floor", "must be at least 1");
  share(t.storm_flapping_fraction, "storm_flapping_fraction");
}

}  // namespace

std::vector<ConfigProblem> fleet_problems(const FleetConfig& c) {
  std::vector<ConfigProblem> out;
  auto problem = [&](bool ok, const char* key, std::string reason) {
    if (!ok) out.push_back({key, std::move(reason), {}});
  };
  auto positive = [&](Duration d, const char* key) {
    problem(d.count() > 0, key, "must be greater than 0");
  };
  positive(c.incident_window, "incident_window");
  problem(c.window_resolution.count() > 0 && c.window_resolution <= c.incident_window,
          "window_resolution", "must be in (0, incident_window]");
  positive(c.incident_stable_for, "incident_stable_for");
  positive(c.straggler_grace, "straggler_grace");
  problem(c.storm_baseline_tau >= c.incident_window, "storm_baseline_tau",
          "must be at least incident_window");
  problem(c.incident_scope_lift >= 1, "incident_scope_lift",
          "must be at least 1, got " + number(c.incident_scope_lift));
  problem(c.incident_merge_within.count() >= 0, "incident_merge_within", "must not be negative");
  problem(c.incident_scope_explain > 0 && c.incident_scope_explain <= 1, "incident_scope_explain",
          "must be in (0, 1], got " + number(c.incident_scope_explain));
  problem(c.cohort_min_support >= 1, "cohort_min_support", "must be at least 1");
  problem(c.cohort_min_lift > 1, "cohort_min_lift",
          "must be greater than 1, got " + number(c.cohort_min_lift));
  threshold_problems(c.defaults, "", out);
  for (const auto& r : c.overrides)
    threshold_problems(r.thresholds, "overrides[" + r.key + "=" + r.value + "].", out);
  return out;
}

std::string validate(const FleetConfig& c) {
  const auto problems = fleet_problems(c);
  if (problems.empty()) return {};
  return problems.front().key + ": " + problems.front().reason;
}

namespace {

constexpr std::uint32_t kGlobalSegment = 0;

// Device classes as the fleet sees them.
enum Cls : std::uint8_t { kUnknown = 0, kUp = 1, kDown = 2, kFlap = 3 };

Cls class_of(State s) {
  switch (s) {
    case State::Online: return kUp;
    case State::Suspect:
    case State::Offline: return kDown;
    case State::Flapping: return kFlap;
    case State::Unknown: return kUnknown;
  }
  return kUnknown;
}

// Sliding window of event counts, coalesced per window_resolution. Entries are in time order
// because time never goes backwards in the core.
struct Window {
  struct Entry {
    std::int64_t at;
    std::uint32_t count;
  };
  std::vector<Entry> entries;
  std::size_t head = 0;
  std::uint32_t total = 0;

  void add(std::int64_t at, std::int64_t resolution) {
    if (head < entries.size() && at < entries.back().at + resolution) {
      ++entries.back().count;
    } else {
      entries.push_back({at, 1});
    }
    ++total;
  }
  // Forget one event recorded at `at` (a device came back). No-op if it already expired.
  void remove(std::int64_t at) {
    if (head >= entries.size() || at < entries[head].at) return;
    auto it = std::upper_bound(entries.begin() + static_cast<std::ptrdiff_t>(head), entries.end(), at,
                               [](std::int64_t t, const Entry& e) { return t < e.at; });
    --it;  // last entry with e.at <= at (exists: at >= entries[head].at)
    if (it->count > 0) {
      --it->count;
      --total;
    }
  }
  // Drop entries with at + window <= now; an event at t counts during [t, t + window).
  template <typename F>
  void expire(std::int64_t now, std::int64_t window, F&& on_expired) {
    while (head < entries.size() && entries[head].at + window <= now) {
      on_expired(entries[head]);
      total -= entries[head].count;
      ++head;
    }
    if (head == entries.size()) {
      entries.clear();
      head = 0;
    } else if (head > 64 && head * 2 > entries.size()) {
      entries.erase(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(head));
      head = 0;
    }
  }
  std::size_t bytes() const { return entries.capacity() * sizeof(Entry); }
};

struct DeviceRec {
  std::int64_t down_since = kNever;    // when it dropped (only while in_window matters)
  std::int64_t last_connect = kNever;  // for the storm cohort
  std::uint32_t held_by = 0;
  std::uint8_t cls = kUnknown;
  bool in_window = false;  // its drop is counted in its segments' drop windows
  // Came back while an incident was open: dropping again inside an open incident is a relapse
  // (cleared when that incident resolves).
  bool released = false;
};

struct Segment {
  std::uint32_t key = 0;  // index into keys (unused for the global segment)
  std::uint32_t value = 0;
  std::uint32_t known = 0, up = 0, down = 0, flap = 0;
  Window drops, reconnects;
  double base_rate = 0;  // reconnects per ms, EWMA over storm_baseline_tau, fed by expired entries
  std::int64_t base_at = kNever;
  std::uint32_t drop_incident = 0, storm_incident = 0;
  FleetThresholds thr;
};

struct KeyTable {
  std::string name;
  std::vector<std::string> values{std::string()};  // value id 0 = unset
  std::unordered_map<std::string, std::uint32_t> ids;
  std::vector<std::uint32_t> segment_of{0};
  std::vector<std::uint32_t> column;  // per device: value id
};

}  // namespace

struct FleetMonitor::Impl {
  FleetConfig cfg;
  std::vector<DeviceRec> devices;
  std::vector<KeyTable> keys;
  std::unordered_map<std::string, std::uint32_t> key_ids;
  std::vector<Segment> segments;
  // First connects of devices never seen before, fleet-wide, in the window. While more devices
  // are joining the fleet than reconnecting (a rollout, presenced started before its fleet), the
  // retries of devices that joined seconds ago are not a reconnect storm of established devices,
  // in any segment (the storm benchmark's 20,000-device ramp paged "Reconnect storm" for 460
  // retries while 10,000 devices were joining). Not per segment: labels often arrive after the
  // first connect.
  Window joins;
  std::map<std::uint32_t, Incident> incidents;
  std::uint32_t next_id = 1;
  std::uint32_t blind_incident = 0;  // latest Blind incident while Open or Recovering
  bool blind = false;
  bool restart_grace = false;
  std::int64_t now = kNever;
  std::vector<IncidentEvent> events;

  explicit Impl(FleetConfig c) : cfg(std::move(c)) {
    segments.emplace_back();
    segments[0].thr = thresholds_for("", "");
  }

  std::int64_t window() const { return cfg.incident_window.count(); }
  std::int64_t resolution() const { return std::max<std::int64_t>(1, cfg.window_resolution.count()); }

  std::int64_t advance(MonoTime t) {
    now = std::max(now, to_ms(t));
    return now;
  }

  FleetThresholds thresholds_for(std::string_view key, std::string_view value) const {
    for (const auto& r : cfg.overrides)
      if (r.key == key && !r.value.empty() && r.value == value) return r.thresholds;
    for (const auto& r : cfg.overrides)
      if (r.key == key && (r.value.empty() || r.value == "*")) return r.thresholds;
    return cfg.defaults;
  }

  void ensure(DeviceIndex d) {
    if (d >= devices.size()) devices.resize(static_cast<std::size_t>(d) + 1);
  }

  std::uint32_t value_of(std::size_t k, DeviceIndex d) const {
    const auto& col = keys[k].column;
    return d < col.size() ? col[d] : 0;
  }

  template <typename F>
  void for_each_segment(DeviceIndex d, F&& f) {
    f(segments[kGlobalSegment]);
    for (std::size_t k = 0; k < keys.size(); ++k) {
      std::uint32_t v = value_of(k, d);
      if (v != 0) f(segments[keys[k].segment_of[v]]);
    }
  }

  bool in_segment(const Segment& s, std::uint32_t seg_index, DeviceIndex d) const {
    if (seg_index == kGlobalSegment) return true;
    return value_of(s.key, d) == s.value;
  }

  static void count(Segment& s, std::uint8_t cls, int delta) {
    auto add = [delta](std::uint32_t& c) { c = static_cast<std::uint32_t>(static_cast<std::int64_t>(c) + delta); };
    if (cls == kUnknown) return;
    add(s.known);
    if (cls == kUp) add(s.up);
    if (cls == kDown) add(s.down);
    if (cls == kFlap) add(s.flap);
  }

  std::uint32_t segment_index_of(std::string_view key, std::string_view value) const {
    if (key.empty()) return kGlobalSegment;
    auto k = key_ids.find(std::string(key));
    if (k == key_ids.end()) return UINT32_MAX;
    const auto& kt = keys[k->second];
    auto v = kt.ids.find(std::string(value));
    if (v == kt.ids.end()) return UINT32_MAX;
    return kt.segment_of[v->second];
  }

  std::uint32_t intern_segment(std::string_view key, std::string_view value) {
    if (key.empty()) return kGlobalSegment;
    std::uint32_t k;
    auto it = key_ids.find(std::string(key));
    if (it == key_ids.end()) {
      k = static_cast<std::uint32_t>(keys.size());
      keys.emplace_back();
      keys.back().name = std::string(key);
      key_ids.emplace(std::string(key), k);
    } else {
      k = it->second;
    }
    auto& kt = keys[k];
    auto v = kt.ids.find(std::string(value));
    if (v != kt.ids.end()) return kt.segment_of[v->second];
    auto id = static_cast<std::uint32_t>(kt.values.size());
    kt.values.emplace_back(value);
    kt.ids.emplace(std::string(value), id);
    auto seg = static_cast<std::uint32_t>(segments.size());
    kt.segment_of.push_back(seg);
    segments.emplace_back();
    segments.back().key = k;
    segments.back().value = id;
    segments.back().thr = thresholds_for(key, value);
    return seg;
  }

  std::pair<std::string, std::string> segment_name(std::uint32_t seg) const {
    if (seg == kGlobalSegment) return {};
    const auto& s = segments[seg];
    return {keys[s.key].name, keys[s.key].values[s.value]};
  }

  void emit(IncidentEvent::Kind kind, std::uint32_t id, std::int64_t at) {
    events.push_back({kind, id, mono_ms(at)});
  }

  Incident* find(std::uint32_t id) {
    auto it = incidents.find(id);
    return it == incidents.end() ? nullptr : &it->second;
  }

  // --- Windows -------------------------------------------------------------------------------

  void expire_drops(Segment& s) {
    s.drops.expire(now, window(), [](const Window::Entry&) {});
  }

  void expire_reconnects(Segment& s) {
    const double tau = static_cast<double>(std::max<std::int64_t>(1, cfg.storm_baseline_tau.count()));
    const bool learn = s.storm_incident == 0;  // a storm must not become the baseline
    s.reconnects.expire(now, window(), [&](const Window::Entry& e) {
      if (!learn) return;
      if (s.base_at != kNever && e.at > s.base_at)
        s.base_rate *= std::exp(-static_cast<double>(e.at - s.base_at) / tau);
      s.base_rate += static_cast<double>(e.count) / tau;
      s.base_at = std::max(s.base_at, e.at);
    });
  }

  double baseline_per_window(const Segment& s) const {
    if (s.base_at == kNever) return 0;
    const double tau = static_cast<double>(std::max<std::int64_t>(1, cfg.storm_baseline_tau.count()));
    double rate = s.base_rate * std::exp(-static_cast<double>(std::max<std::int64_t>(0, now - s.base_at)) / tau);
    return rate * static_cast<double>(window());
  }

  void remove_from_windows(DeviceIndex d) {
    auto& r = devices[d];
    if (!r.in_window) return;
    const std::int64_t t = r.down_since;
    for_each_segment(d, [t](Segment& s) { s.drops.remove(t); });
    r.in_window = false;
  }

  // --- Holding -------------------------------------------------------------------------------

  void hold(DeviceIndex d, Incident& inc) {
    auto& r = devices[d];
    if (r.held_by != 0) return;
    remove_from_windows(d);
    r.held_by = inc.id;
    inc.held.push_back(d);
    ++inc.still_down;
    inc.peak_down = std::max(inc.peak_down, inc.still_down);
  }

  void release(DeviceIndex d) {
    auto& r = devices[d];
    if (r.held_by == 0) return;
    Incident* inc = find(r.held_by);
    r.held_by = 0;
    if (inc == nullptr) return;
    if (inc->stage == IncidentStage::Open) r.released = true;
    if (inc->still_down > 0) --inc->still_down;
    if (inc->stage == IncidentStage::Open) evaluate_back(*inc);
    if (inc->stage == IncidentStage::Stragglers && inc->still_down == 0) close(*inc, now);
  }

  // The open incident that should hold a device going down now, or 0.
  std::uint32_t covering(DeviceIndex d, Cause cause) {
    if (blind && blind_incident != 0) return blind_incident;
    if (cause == Cause::RestartGrace && blind_incident != 0) {
      Incident* b = find(blind_incident);
      if (b != nullptr && (b->stage == IncidentStage::Open || b->stage == IncidentStage::Recovering))
        return blind_incident;
    }
    std::uint32_t found = 0;
    for_each_segment(d, [&](Segment& s) {
      if (found != 0) return;
      if (s.drop_incident != 0) found = s.drop_incident;
      else if (s.storm_incident != 0) found = s.storm_incident;
    });
    return found;
  }

  // Whether a device going down inside an open incident's scope is part of that event (held) or
  // an independent failure paged on its own clock (issue 11: dev-000107 died while a drop
  // incident was open, was held and paged only as a straggler 2 m 45 s later). Part of it: any
  // storm or blind incident (their devices' evidence is the event); a relapse of a device the
  // incident held (post-mortem 003's flapping cohort); a drop within incident_window of the
  // opening (the burst is still arriving: a load balancer drains over minutes); or a drop while
  // the scope is still dropping at the open floor (the event keeps growing). Anything else
  // happened after the event was over in all but its recovery.
  bool part_of(Incident& inc, DeviceIndex d) {
    if (inc.kind != IncidentKind::Drop) return true;
    // A relapse: held, came back, drops again within incident_window of its reconnect (003's
    // flapping cohort). Back and stable for longer, then down: an independent failure (issue 11).
    if (devices[d].released) {
      const std::int64_t back = devices[d].last_connect;
      if (back == kNever || back > now - window()) return true;
    }
    if (now < to_ms(inc.opened_at) + window()) return true;
    const std::uint32_t seg = segment_index_of(inc.scope_key, inc.scope_value);
    if (seg == UINT32_MAX) return false;
    Segment& s = segments[seg];
    expire_drops(s);
    return s.drops.total + 1 >= s.thr.incident_open_floor;
  }

  // --- Opening -------------------------------------------------------------------------------

  struct Candidate {
    std::uint32_t seg = 0;
    std::uint32_t count = 0, population = 0;
    double share = -1;
  };

  // Scope choice, shared by drops and storms. A segment qualifies on its own thresholds; the
  // incident then opens in the BROADEST segment of this device that explains the event nearly as
  // well: share >= best qualifying share / incident_scope_lift and at least its own floor. So a
  // node outage is one broker_node incident (not one per site on that node, even though each
  // site is 100 % down), a cloud outage is one fleet incident, and a cohort that really stands
  // out (firmware 3.8.0-b3 at 100 % while the fleet is at 2 %) is its own scope.
  struct Seen {
    std::uint32_t seg;
    std::uint32_t count, population, floor;
    double share;
    bool qualifies;
  };

  void choose_and_open(IncidentKind kind, const std::vector<Seen>& seen) {
    double max_share = -1;
    for (const auto& x : seen)
      if (x.qualifies) max_share = std::max(max_share, x.share);
    if (max_share < 0) return;
    const Seen* pick = nullptr;
    for (const auto& x : seen) {
      if (x.count < x.floor || x.share * cfg.incident_scope_lift < max_share) continue;
      if (pick == nullptr || x.population > pick->population) pick = &x;
    }
    if (pick == nullptr) return;
    Candidate c{pick->seg, pick->count, pick->population, pick->share};
    std::string narrowed_from;
    if (kind == IncidentKind::Drop) narrow(c, narrowed_from);
    open(kind, c, narrowed_from);
  }

  // Narrowest true scope (issue 11, FleetConfig::incident_scope_explain). Among the devices whose
  // drop is in the chosen segment's window, a label value shared by >= incident_scope_explain of
  // them scopes the incident, when its segment is strictly narrower, has no drop incident yet,
  // and really stands out: its own drop share >= incident_scope_lift x the share of the rest of
  // the chosen segment (a 100 % drop is not "model=gw-100" just because 85 % of devices are
  // gw-100). Ties: the narrower segment. One O(devices) pass per opening.
  void narrow(Candidate& c, std::string& from) {
    if (keys.empty()) return;
    const Segment& s = segments[c.seg];
    const std::int64_t since = now - window();
    std::vector<std::vector<std::uint32_t>> counts(keys.size());
    for (std::size_t k = 0; k < keys.size(); ++k) counts[k].assign(keys[k].values.size(), 0);
    std::uint32_t total = 0;
    for (DeviceIndex d = 0; d < devices.size(); ++d) {
      const auto& r = devices[d];
      if (r.cls == kUnknown || r.cls == kUp || r.held_by != 0 || !in_segment(s, c.seg, d)) continue;
      if (!r.in_window || r.down_since <= since) continue;
      ++total;
      for (std::size_t k = 0; k < keys.size(); ++k) ++counts[k][value_of(k, d)];
    }
    if (total == 0) return;
    std::uint32_t best = UINT32_MAX, best_count = 0;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      for (std::size_t v = 1; v < counts[k].size(); ++v) {
        const std::uint32_t n = counts[k][v];
        const std::uint32_t seg = keys[k].segment_of[v];
        if (seg == c.seg || n == 0) continue;
        const Segment& ns = segments[seg];
        if (ns.drop_incident != 0 || ns.known >= s.known || ns.known == 0) continue;
        if (static_cast<double>(n) < cfg.incident_scope_explain * total) continue;
        const double inside = static_cast<double>(n) / ns.known;
        const double rest = static_cast<double>(total - n) / std::max<std::uint32_t>(1, s.known - ns.known);
        if (inside < cfg.incident_scope_lift * rest) continue;
        if (best == UINT32_MAX || n > best_count || (n == best_count && ns.known < segments[best].known)) {
          best = seg;
          best_count = n;
        }
      }
    }
    if (best == UINT32_MAX) return;
    auto [fk, fv] = segment_name(c.seg);
    from = fk.empty() ? std::string("fleet") : fk + "=" + fv;
    Segment& ns = segments[best];
    expire_drops(ns);
    c.seg = best;
    c.count = ns.drops.total;
    c.population = ns.up + ns.flap + ns.drops.total;
    c.share = c.population == 0 ? 0 : static_cast<double>(c.count) / c.population;
  }

  void evaluate_drop_open(DeviceIndex d) {
    std::vector<Seen>& seen = scratch;
    seen.clear();
    double max_share = -1;
    for_each_segment(d, [&](Segment& s) {
      expire_drops(s);
      if (s.drop_incident != 0) return;
      const std::uint32_t drops = s.drops.total;
      const std::uint32_t pop = s.up + s.flap + drops;
      if (pop == 0) return;
      const double share = static_cast<double>(drops) / pop;
      const bool q = drops >= s.thr.incident_open_floor && share >= s.thr.incident_open_fraction;
      if (q) max_share = std::max(max_share, share);
      seen.push_back({static_cast<std::uint32_t>(&s - segments.data()), drops, pop, s.thr.incident_open_floor, share, q});
    });
    if (max_share >= 0 && widen_to_fleet(max_share)) return;
    choose_and_open(IncidentKind::Drop, seen);
  }

  // See FleetConfig::incident_merge_within. Called when a second segment qualifies (best share
  // `max_share`): if a narrow drop incident opened moments ago and the fleet, counting what that
  // incident holds, qualifies or explains the burst as choose_and_open would (share x
  // incident_scope_lift >= max_share), it becomes the fleet incident and holds this burst too.
  bool widen_to_fleet(double max_share) {
    if (cfg.incident_merge_within.count() <= 0) return false;
    Segment& g = segments[kGlobalSegment];
    if (g.drop_incident != 0) return false;
    Incident* young = nullptr;
    std::uint32_t held_down = 0;
    for (auto& [id, inc] : incidents) {
      if (inc.kind != IncidentKind::Drop || inc.stage != IncidentStage::Open || inc.scope_key.empty())
        continue;
      if (to_ms(inc.opened_at) + cfg.incident_merge_within.count() <= now) continue;
      held_down += inc.still_down;
      if (young == nullptr || inc.id < young->id) young = &inc;
    }
    if (young == nullptr) return false;
    expire_drops(g);
    const std::uint32_t drops = g.drops.total + held_down;
    const std::uint32_t pop = g.up + g.flap + drops;
    if (pop == 0 || drops < g.thr.incident_open_floor) return false;
    const double share = static_cast<double>(drops) / pop;
    if (share < g.thr.incident_open_fraction && share * cfg.incident_scope_lift < max_share) return false;
    Incident& inc = *young;
    const std::uint32_t old_seg = segment_index_of(inc.scope_key, inc.scope_value);
    if (old_seg != UINT32_MAX && segments[old_seg].drop_incident == inc.id) segments[old_seg].drop_incident = 0;
    inc.widened_from = inc.scope_key + "=" + inc.scope_value;
    inc.scope_key.clear();
    inc.scope_value.clear();
    inc.population = pop;
    inc.count = drops;
    inc.share = share;
    g.drop_incident = inc.id;
    // Everything dropped in the window and not held yet is this burst. Another young narrow
    // incident (rare: two within moments, the fleet not explaining the burst at the second)
    // keeps its own devices; they only counted towards the fleet's share above.
    const std::int64_t since = now - window();
    for (DeviceIndex d = 0; d < devices.size(); ++d) {
      auto& r = devices[d];
      if (r.cls == kUnknown || r.held_by != 0) continue;
      if (r.in_window && r.down_since > since && r.cls != kUp) hold(d, inc);
    }
    inc.hint = cohort(inc.held, inc.scope_key, inc.scope_value);
    return true;
  }

  bool storm_condition(Segment& s, std::uint32_t reconnects, double expected) {
    joins.expire(now, window(), [](const Window::Entry&) {});
    const bool rate = reconnects >= s.thr.storm_open_floor && reconnects > joins.total &&
                      static_cast<double>(reconnects) >= s.thr.storm_open_fraction * s.known &&
                      static_cast<double>(reconnects) >= s.thr.storm_open_factor * expected;
    const bool flapping = s.flap >= s.thr.storm_flapping_floor && s.known > 0 &&
                          static_cast<double>(s.flap) >= s.thr.storm_flapping_fraction * s.known;
    return rate || flapping;
  }

  void evaluate_storm_open(DeviceIndex d) {
    // While a drop incident covering this device is open, the reconnect wave is that incident
    // recovering, whichever narrower segment it is concentrated in: one server-side event, one
    // page (scenario 02: a fleet-wide session loss also opened a "storm" in one model's segment).
    bool in_drop = false;
    for_each_segment(d, [&](Segment& s) { in_drop = in_drop || s.drop_incident != 0; });
    if (in_drop) return;
    std::vector<Seen>& seen = scratch;
    seen.clear();
    for_each_segment(d, [&](Segment& s) {
      expire_reconnects(s);
      if (s.storm_incident != 0 || s.drop_incident != 0 || s.known == 0) return;
      const bool q = storm_condition(s, s.reconnects.total, baseline_per_window(s));
      const bool by_rate = s.reconnects.total >= s.thr.storm_open_floor;
      const std::uint32_t count = by_rate ? s.reconnects.total : s.flap;
      const std::uint32_t floor = by_rate ? s.thr.storm_open_floor : s.thr.storm_flapping_floor;
      const double share = static_cast<double>(count) / s.known;
      seen.push_back({static_cast<std::uint32_t>(&s - segments.data()), count, s.known, floor, share, q});
    });
    choose_and_open(IncidentKind::Storm, seen);
  }

  Incident& new_incident(IncidentKind kind, std::uint32_t seg, std::int64_t at) {
    std::uint32_t id = next_id++;
    Incident& inc = incidents[id];
    inc.id = id;
    inc.kind = kind;
    inc.stage = IncidentStage::Open;
    auto [k, v] = segment_name(seg);
    inc.scope_key = std::move(k);
    inc.scope_value = std::move(v);
    inc.opened_at = mono_ms(at);
    return inc;
  }

  void open(IncidentKind kind, const Candidate& c, const std::string& narrowed_from = {}) {
    Incident& inc = new_incident(kind, c.seg, now);
    inc.narrowed_from = narrowed_from;
    Segment& s = segments[c.seg];
    inc.population = c.population;
    inc.count = c.count;
    inc.share = c.share;
    if (kind == IncidentKind::Drop) {
      s.drop_incident = inc.id;
    } else {
      s.storm_incident = inc.id;
      inc_expected[inc.id] = baseline_per_window(s);
    }
    // Hold every device of the segment whose drop is in the window (they opened it) and, for a
    // storm, every flapping one. One O(devices) scan per incident: incidents are rare.
    std::vector<DeviceIndex> cohort_set;
    const std::int64_t since = now - window();
    for (DeviceIndex d = 0; d < devices.size(); ++d) {
      auto& r = devices[d];
      if (r.cls == kUnknown || !in_segment(s, c.seg, d)) continue;
      const bool dropped = r.in_window && r.down_since > since && r.cls != kUp;
      const bool flapping = r.cls == kFlap;
      if (r.held_by == 0 && (dropped || (kind == IncidentKind::Storm && flapping))) hold(d, inc);
      if (kind == IncidentKind::Storm && (flapping || dropped ||
                                          (r.last_connect != kNever && r.last_connect > since)))
        cohort_set.push_back(d);
    }
    if (kind == IncidentKind::Drop) cohort_set = inc.held;
    inc.hint = cohort(cohort_set, inc.scope_key, inc.scope_value);
    emit(IncidentEvent::Kind::Opened, inc.id, now);
  }

  // --- Lifecycle -----------------------------------------------------------------------------

  bool is_back(Incident& inc) {
    std::uint32_t seg = segment_index_of(inc.scope_key, inc.scope_value);
    if (seg == UINT32_MAX) return true;
    Segment& s = segments[seg];
    if (inc.kind == IncidentKind::Drop) {
      // Not stable while the devices it held keep dropping again (post-mortem 003: a flapping
      // cohort is down in turns, each time fewer than the floor). Resolving then would re-open
      // an incident (a new page) at the next burst, and again at each one after it.
      if (auto it = inc_activity.find(inc.id); it != inc_activity.end()) {
        it->second.expire(now, window(), [](const Window::Entry&) {});
        const std::uint32_t relapses = it->second.total;
        if (relapses >= s.thr.incident_open_floor &&
            static_cast<double>(relapses) >=
                s.thr.incident_open_fraction * std::max<std::uint32_t>(1, inc.peak_down))
          return false;
      }
      const std::uint32_t pop = s.up + s.flap + inc.still_down;
      if (inc.still_down < s.thr.incident_open_floor) return true;
      if (inc.peak_down > 0 && static_cast<double>(inc.peak_down - inc.still_down) >
                                   s.thr.incident_recovered_share * inc.peak_down)
        return true;
      return pop == 0 || static_cast<double>(inc.still_down) < s.thr.incident_close_fraction * pop;
    }
    if (inc.kind == IncidentKind::Storm) {
      auto& w = inc_activity[inc.id];
      w.expire(now, window(), [](const Window::Entry&) {});
      expire_reconnects(s);
      return !storm_condition(s, w.total + s.reconnects.total, inc_expected[inc.id]);
    }
    return false;  // Blind: resolved by set_blind(false)
  }

  void evaluate_back(Incident& inc) {
    if (inc.stage != IncidentStage::Open || inc.kind == IncidentKind::Blind) return;
    if (is_back(inc)) {
      if (!inc.back_since) inc.back_since = mono_ms(now);
    } else {
      inc.back_since.reset();
    }
  }

  void resolve(Incident& inc, std::int64_t at) {
    inc.stage = IncidentStage::Recovering;
    inc.resolved_at = mono_ms(at);
    inc.grace_from = mono_ms(at);
    inc.back_since.reset();
    std::uint32_t seg = segment_index_of(inc.scope_key, inc.scope_value);
    if (seg != UINT32_MAX) {
      if (segments[seg].drop_incident == inc.id) segments[seg].drop_incident = 0;
      if (segments[seg].storm_incident == inc.id) segments[seg].storm_incident = 0;
    }
    inc_activity.erase(inc.id);
    for (DeviceIndex d : inc.held)
      if (d < devices.size()) devices[d].released = false;
    emit(IncidentEvent::Kind::Resolved, inc.id, at);
  }

  void close(Incident& inc, std::int64_t at) {
    inc.stage = IncidentStage::Closed;
    inc.closed_at = mono_ms(at);
    if (blind_incident == inc.id) blind_incident = 0;
    inc_expected.erase(inc.id);
    emit(IncidentEvent::Kind::Closed, inc.id, at);
  }

  void prune() {
    std::size_t closed = 0;
    for (auto& [id, inc] : incidents) closed += inc.stage == IncidentStage::Closed;
    for (auto it = incidents.begin(); closed > cfg.incident_history && it != incidents.end();) {
      if (it->second.stage == IncidentStage::Closed) {
        it = incidents.erase(it);
        --closed;
      } else {
        ++it;
      }
    }
  }

  void end_grace(Incident& inc, std::int64_t at) {
    inc.stragglers.clear();
    for (DeviceIndex d : inc.held)
      if (d < devices.size() && devices[d].held_by == inc.id) inc.stragglers.push_back(d);
    // A device that came back and dropped again within the incident is in `held` twice.
    std::sort(inc.stragglers.begin(), inc.stragglers.end());
    inc.stragglers.erase(std::unique(inc.stragglers.begin(), inc.stragglers.end()),
                         inc.stragglers.end());
    if (inc.stragglers.empty()) {
      close(inc, at);
      return;
    }
    inc.stage = IncidentStage::Stragglers;
    // The stragglers' own cohort (incident 001: which devices get stuck?).
    inc.hint = cohort(inc.stragglers, inc.scope_key, inc.scope_value);
    emit(IncidentEvent::Kind::Stragglers, inc.id, at);
  }

  void tick(std::int64_t t) {
    for (auto& [id, inc] : incidents) {
      if (inc.stage == IncidentStage::Open && inc.kind != IncidentKind::Blind) {
        evaluate_back(inc);
        if (inc.back_since && to_ms(*inc.back_since) + cfg.incident_stable_for.count() <= t)
          resolve(inc, to_ms(*inc.back_since) + cfg.incident_stable_for.count());
      }
      if (inc.stage == IncidentStage::Recovering) {
        if (inc.kind == IncidentKind::Blind && restart_grace) continue;
        const std::int64_t due = to_ms(inc.grace_from) + cfg.straggler_grace.count();
        if (due <= t) end_grace(inc, due);
      }
    }
    prune();
  }

  // Over-representation among `set` against the scope's own devices (for the fleet scope: the
  // fleet). Against the fleet, a node outage would "explain" itself by whatever firmware happens
  // to live on that node; against the node, only what stands out among the node's devices does.
  std::vector<CohortHint> cohort(const std::vector<DeviceIndex>& set, std::string_view scope_key,
                                 std::string_view scope_value) const {
    std::vector<CohortHint> out;
    if (set.empty()) return out;
    const std::uint32_t scope_seg = scope_key.empty() ? kGlobalSegment : segment_index_of(scope_key, scope_value);
    std::vector<std::vector<std::uint32_t>> base(keys.size());
    std::uint32_t base_total = 0;
    if (scope_seg == kGlobalSegment || scope_seg == UINT32_MAX) {
      base_total = segments[kGlobalSegment].known;
      for (std::size_t k = 0; k < keys.size(); ++k) {
        base[k].assign(keys[k].values.size(), 0);
        for (std::size_t v = 1; v < keys[k].values.size(); ++v) base[k][v] = segments[keys[k].segment_of[v]].known;
      }
    } else {
      // One O(devices) pass per hint: hints are computed when an incident opens or pages.
      const Segment& sc = segments[scope_seg];
      for (std::size_t k = 0; k < keys.size(); ++k) base[k].assign(keys[k].values.size(), 0);
      for (DeviceIndex d = 0; d < devices.size(); ++d) {
        if (devices[d].cls == kUnknown || value_of(sc.key, d) != sc.value) continue;
        ++base_total;
        for (std::size_t k = 0; k < keys.size(); ++k) ++base[k][value_of(k, d)];
      }
    }
    if (base_total == 0) return out;
    const double n = static_cast<double>(set.size());
    std::vector<std::uint32_t> counts;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const auto& kt = keys[k];
      if (kt.name == scope_key) continue;
      counts.assign(kt.values.size(), 0);
      for (DeviceIndex d : set) ++counts[value_of(k, d)];
      for (std::size_t v = 1; v < counts.size(); ++v) {
        if (counts[v] < cfg.cohort_min_support || base[k][v] == 0) continue;
        CohortHint h;
        h.key = kt.name;
        h.value = kt.values[v];
        h.support = counts[v];
        h.share_in_incident = counts[v] / n;
        h.share_in_scope = static_cast<double>(base[k][v]) / base_total;
        h.lift = h.share_in_incident / h.share_in_scope;
        if (h.lift >= cfg.cohort_min_lift) out.push_back(std::move(h));
      }
    }
    std::sort(out.begin(), out.end(), [](const CohortHint& a, const CohortHint& b) {
      if (a.lift != b.lift) return a.lift > b.lift;
      if (a.support != b.support) return a.support > b.support;
      return std::tie(a.key, a.value) < std::tie(b.key, b.value);
    });
    if (out.size() > cfg.cohort_max) out.resize(cfg.cohort_max);
    return out;
  }

  // Storm bookkeeping kept off the public Incident: reconnects of covered devices, and the
  // baseline frozen at open.
  std::unordered_map<std::uint32_t, Window> inc_activity;
  std::unordered_map<std::uint32_t, double> inc_expected;
  std::vector<Seen> scratch;
};

FleetMonitor::FleetMonitor(FleetConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
FleetMonitor::~FleetMonitor() = default;

const FleetConfig& FleetMonitor::config() const { return impl_->cfg; }

void FleetMonitor::set_label(DeviceIndex device, std::string_view key, std::string_view value) {
  auto& m = *impl_;
  if (device == kNoDevice || key.empty()) return;
  m.ensure(device);
  // Fast path: heartbeats repeat the same labels.
  if (auto k = m.key_ids.find(std::string(key)); k != m.key_ids.end()) {
    const auto& kt = m.keys[k->second];
    if (kt.values[m.value_of(k->second, device)] == value) return;
  }
  std::uint32_t seg = value.empty() ? UINT32_MAX : m.intern_segment(key, value);
  std::uint32_t k = m.key_ids.find(std::string(key)) != m.key_ids.end()
                        ? m.key_ids.find(std::string(key))->second
                        : UINT32_MAX;
  if (k == UINT32_MAX) return;  // empty value for an unknown key: nothing to unset
  auto& kt = m.keys[k];
  if (kt.column.size() <= device) kt.column.resize(static_cast<std::size_t>(device) + 1, 0);
  auto& r = m.devices[device];
  std::uint32_t old = kt.column[device];
  if (old != 0) {
    Segment& os = m.segments[kt.segment_of[old]];
    Impl::count(os, r.cls, -1);
    if (r.in_window) os.drops.remove(r.down_since);
  }
  kt.column[device] = seg == UINT32_MAX ? 0 : m.segments[seg].value;
  if (seg != UINT32_MAX) {
    Segment& ns = m.segments[seg];
    Impl::count(ns, r.cls, +1);
    if (r.in_window) ns.drops.add(r.down_since, m.resolution());
  }
}

std::string_view FleetMonitor::label(DeviceIndex device, std::string_view key) const {
  auto& m = *impl_;
  auto k = m.key_ids.find(std::string(key));
  if (k == m.key_ids.end()) return {};
  return m.keys[k->second].values[m.value_of(k->second, device)];
}

std::vector<std::pair<std::string_view, std::string_view>> FleetMonitor::labels(DeviceIndex device) const {
  auto& m = *impl_;
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (std::size_t k = 0; k < m.keys.size(); ++k) {
    std::uint32_t v = m.value_of(k, device);
    if (v != 0) out.emplace_back(m.keys[k].name, m.keys[k].values[v]);
  }
  return out;
}

void FleetMonitor::on_transition(const Transition& t) {
  auto& m = *impl_;
  if (t.device == kNoDevice) return;
  const std::int64_t at = m.advance(t.at);
  m.ensure(t.device);
  auto& r = m.devices[t.device];
  // Trust the engine's "from": a state restored from a snapshot reaches us only with its first
  // transition.
  const std::uint8_t old = class_of(t.from);
  if (r.cls != old) {
    m.for_each_segment(t.device, [&](Segment& s) {
      Impl::count(s, r.cls, -1);
      Impl::count(s, old, +1);
    });
    r.cls = old;
  }
  const std::uint8_t nw = class_of(t.to);
  if (old != nw) {
    m.for_each_segment(t.device, [&](Segment& s) {
      Impl::count(s, old, -1);
      Impl::count(s, nw, +1);
    });
    r.cls = nw;
  }
  const bool problem_old = old == kDown || old == kFlap;
  const bool problem_new = nw == kDown || nw == kFlap;

  if (nw == kUp || nw == kUnknown) {
    // Back (online is declared only once stable by the engine): no longer held, no longer a drop.
    m.remove_from_windows(t.device);
    r.down_since = kNever;
    m.release(t.device);
    m.prune();
    return;
  }
  if (!problem_new) return;
  if (r.held_by != 0) return;  // already held (down -> flapping inside an incident)
  if (std::uint32_t inc = m.covering(t.device, t.cause); inc != 0) {
    Incident* p = m.find(inc);
    if (p == nullptr) return;
    if (m.part_of(*p, t.device)) {
      m.hold(t.device, *p);
      // A device that came back during the incident and drops again: the incident is not over.
      if (r.released && p->kind == IncidentKind::Drop && p->stage == IncidentStage::Open) {
        m.inc_activity[p->id].add(at, m.resolution());
        m.evaluate_back(*p);
      }
      return;
    }
    // Independent of the open incident: a fresh drop on its own clock (below).
  }
  const bool drop = nw == kDown && !problem_old && (old == kUp || t.cause == Cause::RestartGrace);
  if (drop) {
    r.down_since = at;
    r.in_window = true;
    m.for_each_segment(t.device, [&](Segment& s) { s.drops.add(at, m.resolution()); });
    m.evaluate_drop_open(t.device);
  }
  if (nw == kFlap && old != kFlap) m.evaluate_storm_open(t.device);
}

void FleetMonitor::resync(DeviceIndex device, State state) {
  auto& m = *impl_;
  if (device == kNoDevice) return;
  m.ensure(device);
  auto& r = m.devices[device];
  const std::uint8_t nw = class_of(state);
  if (r.cls == nw) return;
  m.for_each_segment(device, [&](Segment& s) {
    Impl::count(s, r.cls, -1);
    Impl::count(s, nw, +1);
  });
  r.cls = nw;
}

void FleetMonitor::forget(DeviceIndex device) {
  auto& m = *impl_;
  if (device == kNoDevice || device >= m.devices.size()) return;
  resync(device, State::Unknown);
  std::vector<std::string> keys;
  for (const auto& [k, v] : labels(device)) keys.emplace_back(k);
  for (const auto& k : keys) set_label(device, k, "");
  m.devices[device] = DeviceRec{};
}

void FleetMonitor::on_connect(DeviceIndex device, MonoTime at_time) {
  auto& m = *impl_;
  if (device == kNoDevice) return;
  const std::int64_t at = m.advance(at_time);
  m.ensure(device);
  auto& r = m.devices[device];
  const std::int64_t previous = r.last_connect;
  r.last_connect = at;
  if (previous == kNever && !m.blind && !m.restart_grace) {
    m.joins.expire(at, m.window(), [](const Window::Entry&) {});
    m.joins.add(at, m.resolution());
  }
  // Startup, or everyone reconnecting after presenced/broker came back: not a storm.
  if (m.blind || m.restart_grace || r.cls == kUnknown || previous == kNever) return;
  // A device an incident holds reconnecting is that incident recovering, not a storm (a node
  // coming back after an outage reconnects all its devices at once).
  if (r.held_by != 0) return;
  // A device already covered by an open storm counts for that storm only (keeps it open, and
  // keeps its reconnects out of every other segment: one storm, one page).
  std::uint32_t storm = 0;
  m.for_each_segment(device, [&](Segment& s) {
    if (storm == 0 && s.storm_incident != 0) storm = s.storm_incident;
  });
  if (storm != 0) {
    m.inc_activity[storm].add(at, m.resolution());
    return;
  }
  m.for_each_segment(device, [&](Segment& s) {
    m.expire_reconnects(s);
    s.reconnects.add(at, m.resolution());
  });
  m.evaluate_storm_open(device);
}

void FleetMonitor::set_blind(bool blind, MonoTime at_time) {
  auto& m = *impl_;
  const std::int64_t at = m.advance(at_time);
  if (blind == m.blind) return;
  m.blind = blind;
  if (blind) {
    // presenced's own blindness is always its own incident: nothing it reports while blind is
    // evidence about devices.
    Incident& inc = m.new_incident(IncidentKind::Blind, kGlobalSegment, at);
    inc.population = m.segments[kGlobalSegment].known;
    m.blind_incident = inc.id;
    m.emit(IncidentEvent::Kind::Opened, inc.id, at);
  } else if (Incident* inc = m.find(m.blind_incident)) {
    if (inc->stage == IncidentStage::Open) m.resolve(*inc, at);
  }
}

void FleetMonitor::set_restart_grace(bool active, MonoTime at_time) {
  auto& m = *impl_;
  const std::int64_t at = m.advance(at_time);
  if (active == m.restart_grace) return;
  m.restart_grace = active;
  if (!active) {
    if (Incident* inc = m.find(m.blind_incident); inc && inc->stage == IncidentStage::Recovering)
      inc->grace_from = mono_ms(std::max(to_ms(inc->grace_from), at));
  }
}

void FleetMonitor::tick(MonoTime now) { impl_->tick(impl_->advance(now)); }

void FleetMonitor::drain(std::vector<IncidentEvent>& out) {
  auto& ev = impl_->events;
  out.insert(out.end(), ev.begin(), ev.end());
  ev.clear();
}

bool FleetMonitor::healed(std::uint32_t id) const {
  const auto& m = *impl_;
  auto it = m.incidents.find(id);
  if (it == m.incidents.end()) return false;
  const Incident& inc = it->second;
  if (inc.kind != IncidentKind::Drop || inc.stage != IncidentStage::Open) return false;
  const std::uint32_t seg = m.segment_index_of(inc.scope_key, inc.scope_value);
  if (seg == UINT32_MAX) return true;
  const Segment& s = m.segments[seg];
  const std::uint32_t pop = s.up + s.flap + inc.still_down;
  return inc.still_down < s.thr.incident_open_floor ||
         static_cast<double>(inc.still_down) < s.thr.incident_open_fraction * pop;
}

std::vector<DeviceIndex> FleetMonitor::dismiss(std::uint32_t id, MonoTime at_time) {
  auto& m = *impl_;
  std::vector<DeviceIndex> released;
  Incident* inc = m.find(id);
  if (inc == nullptr || inc->kind != IncidentKind::Drop || inc->stage != IncidentStage::Open) return released;
  const std::int64_t at = m.advance(at_time);
  for (DeviceIndex d : inc->held) {
    if (d >= m.devices.size() || m.devices[d].held_by != id) continue;
    m.devices[d].held_by = 0;
    m.devices[d].released = false;
    released.push_back(d);
  }
  for (DeviceIndex d : inc->held)
    if (d < m.devices.size()) m.devices[d].released = false;
  inc->still_down = 0;
  inc->healed = true;
  inc->stage = IncidentStage::Recovering;  // resolve() bookkeeping, then straight to Closed
  const std::uint32_t seg = m.segment_index_of(inc->scope_key, inc->scope_value);
  if (seg != UINT32_MAX && m.segments[seg].drop_incident == id) m.segments[seg].drop_incident = 0;
  m.inc_activity.erase(id);
  inc->resolved_at = mono_ms(at);
  inc->back_since.reset();
  m.close(*inc, at);
  m.prune();
  return released;
}

std::uint32_t FleetMonitor::held_by(DeviceIndex device) const {
  return device < impl_->devices.size() ? impl_->devices[device].held_by : 0;
}

const Incident* FleetMonitor::incident(std::uint32_t id) const {
  auto it = impl_->incidents.find(id);
  return it == impl_->incidents.end() ? nullptr : &it->second;
}

std::vector<const Incident*> FleetMonitor::incidents() const {
  std::vector<const Incident*> out;
  for (const auto& [id, inc] : impl_->incidents) out.push_back(&inc);
  return out;
}

std::optional<SegmentView> FleetMonitor::segment(std::string_view key, std::string_view value) const {
  auto& m = *impl_;
  std::uint32_t seg = m.segment_index_of(key, value);
  if (seg == UINT32_MAX) return std::nullopt;
  Segment& s = m.segments[seg];
  m.expire_drops(s);
  m.expire_reconnects(s);
  SegmentView v;
  v.known = s.known;
  v.up = s.up;
  v.down = s.down;
  v.flapping = s.flap;
  v.drops_in_window = s.drops.total;
  v.reconnects_in_window = s.reconnects.total;
  v.baseline_per_window = m.baseline_per_window(s);
  v.drop_incident = s.drop_incident;
  v.storm_incident = s.storm_incident;
  return v;
}

bool FleetMonitor::blind() const { return impl_->blind; }
bool FleetMonitor::in_restart_grace() const { return impl_->restart_grace; }
MonoTime FleetMonitor::now() const { return mono_ms(impl_->now == kNever ? 0 : impl_->now); }

std::vector<CohortHint> FleetMonitor::cohort(const std::vector<DeviceIndex>& devices, std::string_view scope_key,
                                             std::string_view scope_value) const {
  return impl_->cohort(devices, scope_key, scope_value);
}

std::size_t FleetMonitor::memory_bytes() const {
  const auto& m = *impl_;
  std::size_t b = m.devices.capacity() * sizeof(DeviceRec) + m.segments.capacity() * sizeof(Segment);
  b += m.joins.bytes();
  for (const auto& s : m.segments) b += s.drops.bytes() + s.reconnects.bytes();
  for (const auto& k : m.keys) {
    b += k.column.capacity() * sizeof(std::uint32_t) + k.segment_of.capacity() * sizeof(std::uint32_t);
    for (const auto& v : k.values) b += sizeof(std::string) + v.capacity() + 32;
  }
  for (const auto& [id, inc] : m.incidents) b += sizeof(Incident) + inc.held.capacity() * sizeof(DeviceIndex);
  return b;
}

// The text format is fleet_snapshot.cpp's; here only what the monitor knows goes into the record.
IncidentSnapshot FleetMonitor::snapshot(const std::function<std::string(DeviceIndex)>& id_of) const {
  const auto& m = *impl_;
  IncidentSnapshot snap;
  snap.saved_at_ms = m.now == kNever ? 0 : m.now;
  snap.next_id = m.next_id;
  for (const auto& [id, inc] : m.incidents) {
    if (inc.stage == IncidentStage::Closed) continue;  // pages nothing any more: not saved
    IncidentSnapshot::Record rec;
    rec.incident = inc;
    rec.incident.held.clear();
    rec.incident.stragglers.clear();
    // A named copy: clang before 16 cannot capture a structured binding (the fuzz build is clang).
    const auto incident_id = inc.id;
    for (DeviceIndex d : inc.held) {
      rec.held_ids.push_back(id_of(d));
      if (d < m.devices.size() && m.devices[d].held_by == incident_id) rec.down_ids.push_back(id_of(d));
    }
    for (DeviceIndex d : inc.stragglers) rec.straggler_ids.push_back(id_of(d));
    snap.incidents.push_back(std::move(rec));
  }
  return snap;
}

std::string FleetMonitor::serialize(const std::function<std::string(DeviceIndex)>& id_of) const {
  return to_text(snapshot(id_of));
}

std::size_t FleetMonitor::restore(const IncidentSnapshot& snap, MonoTime now_time,
                                  const std::function<DeviceIndex(std::string_view)>& intern) {
  auto& m = *impl_;
  const std::int64_t now = m.advance(now_time);
  const std::int64_t shift = sub_sat(now, snap.saved_at_ms);
  auto rebase = [shift](MonoTime t) { return mono_ms(add_sat(to_ms(t), shift)); };
  std::size_t restored = 0;
  for (const auto& rec : snap.incidents) {
    if (m.incidents.count(rec.incident.id) != 0) continue;  // never clobber a live incident
    Incident inc = rec.incident;
    inc.opened_at = rebase(inc.opened_at);
    inc.resolved_at = rebase(inc.resolved_at);
    inc.grace_from = rebase(inc.grace_from);
    if (inc.back_since) inc.back_since = rebase(*inc.back_since);
    inc.held.clear();
    inc.stragglers.clear();
    inc.still_down = 0;
    // A Blind incident cannot still be open after a restart: presenced sees the broker again
    // before it restores; its stragglers are judged after the restart grace.
    if (inc.kind == IncidentKind::Blind && inc.stage == IncidentStage::Open) {
      inc.stage = IncidentStage::Recovering;
      inc.resolved_at = mono_ms(now);
      inc.grace_from = mono_ms(now);
    }
    for (const auto& id : rec.held_ids) {
      DeviceIndex d = intern(id);
      if (d != kNoDevice) inc.held.push_back(d);
    }
    for (const auto& id : rec.straggler_ids) {
      DeviceIndex d = intern(id);
      if (d != kNoDevice) inc.stragglers.push_back(d);
    }
    for (const auto& id : rec.down_ids) {
      DeviceIndex d = intern(id);
      if (d == kNoDevice) continue;
      m.ensure(d);
      if (m.devices[d].held_by == 0) {
        m.devices[d].held_by = inc.id;
        ++inc.still_down;
      }
    }
    std::uint32_t id = inc.id;
    if (inc.stage == IncidentStage::Open && inc.kind != IncidentKind::Blind) {
      std::uint32_t seg = m.intern_segment(inc.scope_key, inc.scope_value);
      if (inc.kind == IncidentKind::Drop) m.segments[seg].drop_incident = id;
      else m.segments[seg].storm_incident = id;
      if (inc.kind == IncidentKind::Storm) m.inc_expected[id] = 0;
    }
    if (inc.kind == IncidentKind::Blind) m.blind_incident = id;
    m.incidents[id] = std::move(inc);
    m.next_id = std::max(m.next_id, id + 1);
    ++restored;
  }
  m.next_id = std::max(m.next_id, snap.next_id);
  return restored;
}

}  // namespace presence::core
