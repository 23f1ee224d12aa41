#include "presence/server/api_backend.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <exception>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <unordered_set>
#include <utility>

#include "presence/core/fleet.h"
#include "presence/core/words.h"

namespace presence::server {

using api::ApiError;
using api::Result;
using core::DeviceIndex;
using core::MonoTime;
using core::mono_now;

using ingest::WallAnchor;

namespace {

ApiError no_policy() {
  return ApiError::unavailable("the alert policy is not running (alerts.mode is not presence?)");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ApiQueries: engine thread only.

struct ApiQueries::State {
  ApiBackendOptions opt;
  WallAnchor anchor;

  struct Record {
    DeviceIndex device = core::kNoDevice;
    core::State from = core::State::Unknown, to = core::State::Unknown;
    core::Cause cause = core::Cause::Connected;
    core::DisconnectReason reason = core::DisconnectReason::Unknown;
    MonoTime at{};
  };
  std::vector<Record> ring;
  std::size_t ring_next = 0;  // slot the next record goes to

  struct Sample {
    MonoTime at{};
    std::array<std::size_t, 5> counts{};
  };
  std::vector<Sample> history;  // ring of history_samples
  std::size_t history_next = 0;
  std::optional<MonoTime> last_sample;

  using SegmentKey = std::pair<std::string, std::string>;
  // Transparent: a lookup by string_views copies nothing.
  struct SegmentLess {
    using is_transparent = void;
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      const std::string_view a1 = a.first, b1 = b.first;
      if (a1 != b1) return a1 < b1;
      return std::string_view(a.second) < std::string_view(b.second);
    }
  };
  std::map<SegmentKey, std::array<std::size_t, 5>, SegmentLess> scan_acc;
  bool scan_truncated = false;
  bool scanning = false;
  DeviceIndex scan_next = 0;
  MonoTime next_pass{};
  MonoTime fleet_watched_until{};
  std::vector<api::SegmentCounts> segments;
  bool segments_truncated = false;
  std::optional<MonoTime> segments_at;

  api::WallTime wall(MonoTime t) const {
    return std::chrono::time_point_cast<api::WallTime::duration>(anchor.to_wall(t));
  }
  MonoTime mono(api::WallTime t) const {
    return anchor.mono + std::chrono::duration_cast<core::Duration>(t - anchor.wall);
  }

  // One step of the segment pass: at most scan_per_batch devices.
  void scan_step(const core::Engine& engine, MonoTime now, const core::AlertPolicy* policy) {
    if (!scanning) {
      if (segments_at && now < next_pass) return;
      scanning = true;
      scan_next = 0;
      scan_acc.clear();
      scan_truncated = false;
    }
    const std::size_t n = engine.size();
    const std::size_t end = std::min<std::size_t>(n, scan_next + opt.scan_per_batch);
    for (; scan_next < end; ++scan_next) {
      if (!engine.known(scan_next)) continue;  // forgotten (presence.forget_after)
      const auto state = static_cast<std::size_t>(engine.view(scan_next).state);
      auto count = [&](std::string_view k, std::string_view v) {
        auto it = scan_acc.find(std::pair(k, v));
        if (it == scan_acc.end()) {
          if (scan_acc.size() >= opt.max_segments) {
            scan_truncated = true;
            return;
          }
          it = scan_acc.emplace(SegmentKey(k, v), std::array<std::size_t, 5>{}).first;
        }
        ++it->second[state];
      };
      if (policy) {  // interned views: no string copies per device
        for (const auto& [k, v] : policy->fleet().labels(scan_next)) count(k, v);
      } else {
        for (const auto& [k, v] : engine.labels(scan_next)) count(k, v);
      }
    }
    if (scan_next < n) return;
    segments.clear();
    for (const auto& [key, counts] : scan_acc) {
      api::SegmentCounts s;
      s.key = key.first;
      s.value = key.second;
      for (std::size_t i = 0; i < counts.size(); ++i) {
        s.devices += counts[i];
        s.by_state.emplace_back(core::to_string(static_cast<core::State>(i)), counts[i]);
      }
      segments.push_back(std::move(s));
    }
    segments_truncated = scan_truncated;
    segments_at = now;
    scanning = false;
    next_pass = now + opt.segment_interval;
  }

  // What was sent and not resolved, by dedup_key (on_intents). Bounded by the open pages.
  struct Sent {
    core::AlertIntent::Type type = core::AlertIntent::Type::DeviceOffline;
    core::Severity severity = core::Severity::Error;
    std::string summary, component, group;
    MonoTime at{};  // first trigger: a re-sent page (group update) keeps its age
  };
  std::map<std::string, Sent, std::less<>> sent;

  // With a policy, a down device behind a down parent reads "unreachable" with that parent
  // (issue 15; core::shown_state_word, the same words as the retained device topic).
  api::DeviceSummary summary(const core::Engine& engine, const core::AlertPolicy* policy,
                             DeviceIndex d) const {
    const auto v = engine.view(d);
    api::DeviceSummary s;
    s.id = std::string(v.id);
    const std::string behind = policy ? policy->unreachable_behind(d) : std::string();
    s.state = core::shown_state_word(v.state, behind);
    if (s.state == core::kUnreachableWord) s.parent = behind;
    s.since = wall(v.since);
    s.reason = core::to_string(v.cause);
    if (v.cause == core::Cause::Disconnected)
      s.disconnect_reason = core::to_string(v.disconnect_reason);
    for (auto& [k, val] : engine.labels(d)) s.labels.emplace_back(std::move(k), std::move(val));
    return s;
  }

  api::IncidentSummary incident_summary(const core::Incident& i) const {
    api::IncidentSummary s;
    s.id = i.id;
    s.kind = core::to_string(i.kind);
    s.stage = core::to_string(i.stage);
    s.scope_key = i.scope_key;
    s.scope_value = i.scope_value;
    s.opened_at = wall(i.opened_at);
    if (i.stage != core::IncidentStage::Open) s.resolved_at = wall(i.resolved_at);
    if (i.stage == core::IncidentStage::Closed) s.closed_at = wall(i.closed_at);
    s.population = i.population;
    s.count = i.count;
    s.share = i.share;
    s.peak_down = i.peak_down;
    s.still_down = i.still_down;
    s.held = i.held.size();
    s.stragglers = i.stragglers.size();
    s.healed = i.healed;
    s.hint = hint_views(i.hint);
    return s;
  }

  static std::vector<api::CohortHintView> hint_views(const std::vector<core::CohortHint>& hint) {
    std::vector<api::CohortHintView> out;
    for (const auto& h : hint)
      out.push_back({h.key, h.value, h.support, h.share_in_incident, h.share_in_scope, h.lift});
    return out;
  }

  // Each device once, in first-seen order (issue 17: an incident's held list names a device
  // again each time it was held anew, so dev-000097 appeared twice), at most max_ids.
  static std::vector<DeviceIndex> unique(const std::vector<DeviceIndex>& devices) {
    std::vector<DeviceIndex> out;
    std::unordered_set<DeviceIndex> seen;
    out.reserve(devices.size());
    for (DeviceIndex d : devices)
      if (seen.insert(d).second) out.push_back(d);
    return out;
  }
  std::vector<std::string> ids(const core::Engine& engine,
                               const std::vector<DeviceIndex>& devices) const {
    std::vector<std::string> out;
    for (DeviceIndex d : unique(devices)) {
      if (out.size() >= opt.max_ids) break;
      out.emplace_back(engine.id_of(d));
    }
    return out;
  }

  api::SilenceView view_of(const core::Silence& s) const {
    api::SilenceView v;
    v.id = s.id;
    v.match = s.match;
    v.starts_at = wall(s.starts_at);
    v.ends_at = wall(s.ends_at);
    v.comment = s.comment;
    return v;
  }
};

ApiQueries::ApiQueries(ApiBackendOptions options, WallAnchor anchor)
    : st_(std::make_unique<State>()) {
  st_->opt = std::move(options);
  if (st_->opt.transition_ring == 0) st_->opt.transition_ring = 1;
  if (st_->opt.scan_per_batch == 0) st_->opt.scan_per_batch = 1;
  st_->anchor = anchor;
}

ApiQueries::~ApiQueries() = default;

const ApiBackendOptions& ApiQueries::options() const {
  return st_->opt;
}

void ApiQueries::on_batch(const core::Engine& engine, const std::vector<core::Transition>& ts,
                          MonoTime now, const core::AlertPolicy* policy) {
  auto& s = *st_;
  for (const auto& t : ts) {
    State::Record r{t.device, t.from, t.to, t.cause, t.disconnect_reason, t.at};
    if (s.ring.size() < s.opt.transition_ring) {
      s.ring.push_back(r);
    } else {
      s.ring[s.ring_next] = r;
    }
    s.ring_next = (s.ring_next + 1) % s.opt.transition_ring;
  }
  if (s.opt.history_samples > 0 &&
      (!s.last_sample || now - *s.last_sample >= s.opt.history_interval)) {
    const State::Sample sample{now, engine.counts()};
    if (s.history.size() < s.opt.history_samples) {
      s.history.push_back(sample);
    } else {
      s.history[s.history_next] = sample;
    }
    s.history_next = (s.history_next + 1) % s.opt.history_samples;
    s.last_sample = now;
  }
  if (now < s.fleet_watched_until) s.scan_step(engine, now, policy);
}

Result<api::DevicePage> ApiQueries::devices(const core::Engine& engine,
                                            const core::AlertPolicy* policy,
                                            const api::DeviceQuery& q) const {
  api::DevicePage page;
  page.total = engine.device_count();
  // ?state= matches the word shown: "unreachable" selects down devices behind a down parent,
  // "offline"/"suspect" then leave them out.
  const bool topo = policy != nullptr && !policy->topology().empty();
  const bool want_unreachable = q.state == core::kUnreachableWord;
  const bool by_state = !q.state.empty() && !want_unreachable;
  core::State state = core::State::Unknown;
  if (by_state) {
    const auto parsed = core::state_from_word(q.state);
    if (!parsed) return Result<api::DevicePage>::fail(ApiError::bad_request("state: unknown"));
    state = *parsed;
  }
  const std::size_t n = engine.size();
  std::size_t scanned = 0;
  std::uint64_t i = q.cursor;
  for (; i < n; ++i) {
    if (page.devices.size() >= q.limit || scanned >= q.scan_budget) break;
    ++scanned;
    const auto d = static_cast<DeviceIndex>(i);
    if (!engine.known(d)) continue;  // forgotten (presence.forget_after): not shown
    if (by_state || want_unreachable || !q.id_prefix.empty()) {
      const auto v = engine.view(d);
      if (by_state && v.state != state) continue;
      if (by_state || want_unreachable) {
        const std::string behind = topo ? policy->unreachable_behind(d) : std::string();
        const bool unreachable = std::string_view(core::shown_state_word(v.state, behind)) == core::kUnreachableWord;
        if (unreachable != want_unreachable) continue;
      }
      if (!q.id_prefix.empty() && v.id.substr(0, q.id_prefix.size()) != q.id_prefix) continue;
    }
    bool match = true;
    if (!q.labels.empty()) {
      if (policy) {  // interned lookups, no allocation per device
        for (const auto& [k, val] : q.labels)
          if (policy->fleet().label(d, k) != val) match = false;
      } else {
        const auto labels = engine.labels(d);
        for (const auto& m : q.labels)
          if (std::find(labels.begin(), labels.end(), m) == labels.end()) match = false;
      }
    }
    if (match) page.devices.push_back(st_->summary(engine, policy, d));
  }
  if (i < n) page.next = i;
  return {std::move(page), {}};
}

Result<api::DeviceDetail> ApiQueries::device(const core::Engine& engine,
                                             const core::AlertPolicy* policy,
                                             std::string_view id) const {
  const auto& s = *st_;
  const auto d = engine.find(id);
  if (!d)
    return Result<api::DeviceDetail>::fail(
        ApiError::not_found("no device '" + std::string(id.substr(0, 200)) + "'"));
  api::DeviceDetail out;
  out.device = s.summary(engine, policy, *d);
  const auto v = engine.view(*d);
  out.last_seen = s.wall(v.last_seen);
  out.heartbeat_mean_ms = v.heartbeat_mean.count();
  out.heartbeat_timeout_ms = v.heartbeat_timeout.count();
  out.session = v.session;
  if (policy) out.held_by_incident = policy->fleet().held_by(*d);
  // Newest first while collecting, then oldest first in the answer.
  const std::size_t size = s.ring.size();
  for (std::size_t k = 0; k < size && out.transitions.size() < s.opt.transitions_per_device; ++k) {
    const auto& r = s.ring[(s.ring_next + size - 1 - k) % size];
    if (r.device != *d) continue;
    api::TransitionRecord t;
    t.at = s.wall(r.at);
    t.from = core::to_string(r.from);
    t.to = core::to_string(r.to);
    t.reason = core::to_string(r.cause);
    if (r.cause == core::Cause::Disconnected) t.disconnect_reason = core::to_string(r.reason);
    out.transitions.push_back(std::move(t));
    // A device leaves Unknown once: older records with this index belong to a forgotten device
    // whose index was reused (presence.forget_after).
    if (r.from == core::State::Unknown) break;
  }
  std::reverse(out.transitions.begin(), out.transitions.end());
  return {std::move(out), {}};
}

Result<api::FleetSummary> ApiQueries::fleet(const core::Engine& engine, MonoTime now,
                                            bool broker_connected,
                                            const core::AlertPolicy* policy) {
  auto& s = *st_;
  // Someone is watching: keep the segment pass going for a minute. A fleet that fits into one
  // step is counted afresh for every request.
  s.fleet_watched_until = now + std::chrono::minutes(1);
  if (engine.size() <= s.opt.scan_per_batch) {
    s.scanning = false;
    s.segments_at.reset();
    s.scan_step(engine, now, policy);
  }
  api::FleetSummary f;
  f.at = s.wall(now);
  f.devices = engine.device_count();
  const auto counts = engine.counts();
  for (std::size_t i = 0; i < counts.size(); ++i)
    f.by_state.emplace_back(core::to_string(static_cast<core::State>(i)), counts[i]);
  f.broker_connected = broker_connected;
  f.blind = engine.blind() || !broker_connected;
  f.restart_grace = engine.in_restart_grace();
  f.segments = s.segments;
  f.segments_truncated = s.segments_truncated;
  if (s.segments_at) f.segments_at = s.wall(*s.segments_at);
  return {std::move(f), {}};
}

Result<std::vector<api::FleetSample>> ApiQueries::fleet_history() const {
  const auto& s = *st_;
  Result<std::vector<api::FleetSample>> r;
  const std::size_t n = s.history.size();
  const std::size_t first = n < s.opt.history_samples ? 0 : s.history_next;
  for (std::size_t k = 0; k < n; ++k) {
    const auto& x = s.history[(first + k) % n];
    r.value.push_back({s.wall(x.at), x.counts});
  }
  return r;
}

Result<std::vector<api::IncidentSummary>> ApiQueries::incidents(
    const core::AlertPolicy* policy) const {
  using R = Result<std::vector<api::IncidentSummary>>;
  if (!policy) return R::fail(no_policy());
  R r;
  for (const auto* i : policy->fleet().incidents()) r.value.push_back(st_->incident_summary(*i));
  return r;
}

Result<api::IncidentDetail> ApiQueries::incident(const core::Engine& engine,
                                                 const core::AlertPolicy* policy,
                                                 std::uint32_t id) const {
  using R = Result<api::IncidentDetail>;
  if (!policy) return R::fail(no_policy());
  const core::Incident* i = policy->fleet().incident(id);
  if (!i) return R::fail(ApiError::not_found("no incident " + std::to_string(id)));
  R r;
  r.value.incident = st_->incident_summary(*i);
  r.value.held_devices = st_->ids(engine, i->held);
  r.value.still_held_devices = st_->ids(engine, policy->held(id));
  r.value.straggler_devices = st_->ids(engine, i->stragglers);
  for (const auto& a : policy->firing())
    if (a.incident == id) r.value.alerts.push_back(a.dedup_key);
  return r;
}

Result<std::vector<api::SilenceView>> ApiQueries::silences(const core::AlertPolicy* policy) const {
  using R = Result<std::vector<api::SilenceView>>;
  if (!policy) return R::fail(no_policy());
  R r;
  for (const auto& s : policy->silences()) r.value.push_back(st_->view_of(s));
  return r;
}

namespace {

const char* alert_kind(core::AlertIntent::Type t) {
  using T = core::AlertIntent::Type;
  switch (t) {
    case T::DeviceOffline:
    case T::DeviceFlapping:
      return "device";
    case T::DeviceGroup:
      return "group";
    case T::FleetIncident:
    case T::ReconnectStorm:
      return "incident";
    case T::Stragglers:
      return "stragglers";
    case T::Blind:
      return "blind";
    case T::Persistence:
      return "persistence";
    case T::DeviceCap:
      return "device_cap";
    case T::Overloaded:
      return "overloaded";
  }
  return "unknown";
}

std::string incident_scope(const core::Incident& i) {
  if (i.kind == core::IncidentKind::Blind) return "broker";
  return i.scope_key.empty() ? std::string("fleet") : i.scope_key + "=" + i.scope_value;
}

}  // namespace

void ApiQueries::on_intents(const std::vector<core::AlertIntent>& intents) {
  auto& book = st_->sent;
  for (const auto& in : intents) {
    if (in.action == core::AlertIntent::Action::Trigger) {
      auto [it, fresh] = book.try_emplace(in.dedup_key);
      if (fresh) it->second.at = in.at;
      it->second.type = in.type;
      it->second.severity = in.severity;
      it->second.summary = in.summary;
      it->second.component = in.component;
      it->second.group = in.group;
    } else if (in.action == core::AlertIntent::Action::Resolve) {
      book.erase(in.dedup_key);
    }
  }
}

Result<std::vector<api::FiringAlertView>> ApiQueries::alerts(
    const core::Engine& engine, const core::AlertPolicy* policy) const {
  const auto& s = *st_;
  std::vector<std::pair<MonoTime, api::FiringAlertView>> rows;
  std::set<std::string, std::less<>> listed;
  auto from_book = [&](api::FiringAlertView& v, MonoTime& since) {
    const auto it = s.sent.find(v.dedup_key);
    if (it == s.sent.end()) return false;
    v.severity = core::to_string(it->second.severity);
    v.summary = it->second.summary;
    since = it->second.at;
    return true;
  };
  auto set_devices = [&](api::FiringAlertView& v, const std::vector<DeviceIndex>& devices) {
    const auto once = State::unique(devices);
    v.device_count = once.size();
    v.devices = s.ids(engine, once);
  };
  if (policy) {
    for (const auto& f : policy->firing()) {
      api::FiringAlertView v;
      v.dedup_key = f.dedup_key;
      v.type = core::to_string(f.type);
      v.kind = alert_kind(f.type);
      v.incident = f.incident;
      MonoTime since = f.since;
      const core::Incident* inc = f.incident ? policy->fleet().incident(f.incident) : nullptr;
      if (inc) {
        v.scope = incident_scope(*inc);
        v.hint = State::hint_views(inc->hint);
      }
      switch (f.type) {
        case core::AlertIntent::Type::FleetIncident:
        case core::AlertIntent::Type::ReconnectStorm:
          set_devices(v, policy->held(f.incident));  // still down and held by it
          break;
        case core::AlertIntent::Type::Blind:
          break;
        default:
          set_devices(v, f.devices);
      }
      if (!from_book(v, since)) {
        // Restored from a snapshot after a restart: sent by the previous process, not re-sent.
        v.summary = std::string(v.type) + " (sent before presenced restarted)";
        if (since == MonoTime{} && f.devices.size() == 1) since = engine.view(f.devices[0]).since;
      }
      const auto it = s.sent.find(v.dedup_key);
      if (v.kind == std::string_view("device"))
        v.scope = v.devices.empty() ? std::string() : v.devices.front();
      else if (v.kind == std::string_view("group"))
        v.scope = it != s.sent.end() && !it->second.group.empty() ? "route " + it->second.group
                                                                  : std::string("group");
      v.since = s.wall(since);
      listed.insert(v.dedup_key);
      rows.emplace_back(since, std::move(v));
    }
  }
  // Sent and not resolved, but not in the policy's firing set: never hide a page the on-call
  // has (alerts.mode naive has no policy; with one, the unit tests hold the two sets equal).
  for (const auto& [key, sent] : s.sent) {
    if (listed.count(key)) continue;
    api::FiringAlertView v;
    v.dedup_key = key;
    v.type = core::to_string(sent.type);
    v.kind = alert_kind(sent.type);
    v.severity = core::to_string(sent.severity);
    v.summary = sent.summary;
    v.scope = sent.component;
    if (engine.find(sent.component)) {  // a device page: its device
      v.device_count = 1;
      v.devices = {sent.component};
    }
    v.since = s.wall(sent.at);
    rows.emplace_back(sent.at, std::move(v));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second.dedup_key < b.second.dedup_key;
  });
  Result<std::vector<api::FiringAlertView>> r;
  for (auto& [t, v] : rows) r.value.push_back(std::move(v));
  return r;
}

Result<api::SilenceView> ApiQueries::add_silence(core::AlertPolicy* policy,
                                                 const api::NewSilence& n, MonoTime now) const {
  using R = Result<api::SilenceView>;
  if (!policy) return R::fail(no_policy());
  core::Silence s;
  s.match = n.match;
  s.starts_at = n.starts_at ? st_->mono(*n.starts_at) : now;
  s.ends_at = st_->mono(n.ends_at);
  s.comment = n.comment;
  if (s.ends_at <= now) return R::fail(ApiError::bad_request("ends_at is in the past"));
  if (s.ends_at <= s.starts_at)
    return R::fail(ApiError::bad_request("ends_at must be after starts_at"));
  s.id = policy->add_silence(s);
  if (s.id == 0) return R::fail(ApiError::bad_request("the policy refused this silence"));
  return {st_->view_of(s), {}};
}

Result<bool> ApiQueries::remove_silence(core::AlertPolicy* policy, std::uint64_t id,
                                        MonoTime now) const {
  if (!policy) return Result<bool>::fail(no_policy());
  return {policy->remove_silence(id, now), {}};
}

// ---------------------------------------------------------------------------------------------
// LoopApiBackend: every call posted to the engine thread.

struct LoopApiBackend::Impl {
  Loop& loop;
  PolicyFn policy_fn;
  std::function<bool()> broker_connected;
  ApiQueries queries;
  HygieneFn hygiene;  // engine thread only

  Impl(Loop& l, PolicyFn p, std::function<bool()> connected, ApiBackendOptions o)
      : loop(l), policy_fn(std::move(p)), broker_connected(std::move(connected)), queries(std::move(o), [] {
          WallAnchor a;
          a.mono = mono_now();
          a.wall = std::chrono::system_clock::now();
          return a;
        }()) {}

  core::AlertPolicy* policy() const { return policy_fn ? policy_fn() : nullptr; }
  // The engine's latest time, or the clock if the engine has not seen one yet.
  static MonoTime now(const core::Engine& engine) { return std::max(engine.now(), mono_now()); }
};

namespace {

// Runs fn on the engine thread and waits (bounded) for its answer. A request that timed out
// must not take effect later (a silence added after the client was told 503 would be added
// twice on retry): whoever moves `claim` from Pending first decides. The task only runs fn if
// it claimed it; the waiter, on timeout, cancels unless the task already started, in which case
// it waits for the (short) query to finish.
template <typename T, typename Fn>
Result<T> on_engine(const std::shared_ptr<LoopApiBackend::Impl>& impl, Fn fn) {
  enum : int { Pending, Running, Cancelled };
  // The promise belongs to the task alone: a task dropped at stop breaks it, and the waiter
  // returns at once instead of waiting for the timeout.
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto claim = std::make_shared<std::atomic<int>>(Pending);
  auto future = promise->get_future();
  const bool posted =
      impl->loop.post([impl, promise, claim, fn = std::move(fn)](core::Engine& e) {
        int expected = Pending;
        if (!claim->compare_exchange_strong(expected, Running)) return;  // caller gave up
        try {
          promise->set_value(fn(*impl, e));
        } catch (const std::exception& ex) {
          promise->set_value(Result<T>::fail({500, "internal", ex.what()}));
        }
      });
  if (!posted) return Result<T>::fail(ApiError::unavailable("presenced is not running"));
  if (future.wait_for(impl->queries.options().timeout) != std::future_status::ready) {
    int expected = Pending;
    if (claim->compare_exchange_strong(expected, Cancelled))
      return Result<T>::fail(ApiError::unavailable("the engine is busy; retry"));
    future.wait();  // already running: its effect happened, report it
  }
  try {
    return future.get();
  } catch (const std::future_error&) {  // dropped at stop: broken promise
    return Result<T>::fail(ApiError::unavailable("presenced is stopping"));
  }
}

}  // namespace

LoopApiBackend::LoopApiBackend(Loop& loop, PolicyFn policy,
                               std::function<bool()> broker_connected, ApiBackendOptions options)
    : impl_(std::make_shared<Impl>(loop, std::move(policy), std::move(broker_connected),
                                   std::move(options))) {}

Step LoopApiBackend::step() {
  Step s;
  s.name = "api";
  // The step keeps Impl alive for as long as the loop may run it.
  s.run = [impl = impl_](Batch& b) {
    impl->queries.on_batch(b.engine, b.transitions, b.now, impl->policy());
  };
  return s;
}

LoopApiBackend::~LoopApiBackend() = default;

Result<api::DevicePage> LoopApiBackend::devices(const api::DeviceQuery& q) {
  return on_engine<api::DevicePage>(impl_, [q](Impl& self, core::Engine& e) {
    return self.queries.devices(e, self.policy(), q);
  });
}

Result<api::DeviceDetail> LoopApiBackend::device(std::string_view id) {
  return on_engine<api::DeviceDetail>(impl_, [id = std::string(id)](Impl& self, core::Engine& e) {
    return self.queries.device(e, self.policy(), id);
  });
}

Result<api::FleetSummary> LoopApiBackend::fleet() {
  const bool connected = impl_->broker_connected && impl_->broker_connected();
  return on_engine<api::FleetSummary>(impl_, [connected](Impl& self, core::Engine& e) {
    return self.queries.fleet(e, Impl::now(e), connected, self.policy());
  });
}

Result<std::vector<api::FleetSample>> LoopApiBackend::fleet_history() {
  return on_engine<std::vector<api::FleetSample>>(
      impl_, [](Impl& self, core::Engine&) { return self.queries.fleet_history(); });
}

Result<std::vector<api::IncidentSummary>> LoopApiBackend::incidents() {
  return on_engine<std::vector<api::IncidentSummary>>(
      impl_, [](Impl& self, core::Engine&) { return self.queries.incidents(self.policy()); });
}

Result<api::IncidentDetail> LoopApiBackend::incident(std::uint32_t id) {
  return on_engine<api::IncidentDetail>(impl_, [id](Impl& self, core::Engine& e) {
    return self.queries.incident(e, self.policy(), id);
  });
}

Result<std::vector<api::SilenceView>> LoopApiBackend::silences() {
  return on_engine<std::vector<api::SilenceView>>(
      impl_, [](Impl& self, core::Engine&) { return self.queries.silences(self.policy()); });
}

Result<std::vector<api::FiringAlertView>> LoopApiBackend::alerts() {
  return on_engine<std::vector<api::FiringAlertView>>(impl_, [](Impl& self, core::Engine& e) {
    return self.queries.alerts(e, self.policy());
  });
}

void LoopApiBackend::set_hygiene(HygieneFn report) { impl_->hygiene = std::move(report); }

Result<api::DoctorReport> LoopApiBackend::doctor(std::size_t limit) {
  if (!impl_->hygiene) return Result<api::DoctorReport>::fail(ApiError::unavailable("no device-hygiene data"));
  return on_engine<api::DoctorReport>(impl_, [limit](Impl& self, core::Engine&) {
    const ingest::HygieneReport h = self.hygiene(limit);  // engine thread, as it must be
    api::DoctorReport r;
    r.devices_checked = h.devices_checked;
    r.devices_dropped = h.devices_dropped;
    r.counts = h.counts;
    r.truncated = h.truncated;
    for (const auto& f : h.findings) r.findings.push_back({f.id, f.check, f.problem, f.fix});
    return Result<api::DoctorReport>{std::move(r), {}};
  });
}

void LoopApiBackend::on_intents(const std::vector<core::AlertIntent>& intents) {
  impl_->queries.on_intents(intents);
}

Result<api::SilenceView> LoopApiBackend::add_silence(const api::NewSilence& n) {
  return on_engine<api::SilenceView>(impl_, [n](Impl& self, core::Engine& e) {
    return self.queries.add_silence(self.policy(), n, Impl::now(e));
  });
}

Result<bool> LoopApiBackend::remove_silence(std::uint64_t id) {
  return on_engine<bool>(impl_, [id](Impl& self, core::Engine& e) {
    return self.queries.remove_silence(self.policy(), id, Impl::now(e));
  });
}

}  // namespace presence::server
