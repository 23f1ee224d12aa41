#include "presence/ingest/api_backend.h"

#include <algorithm>
#include <array>
#include <exception>
#include <future>
#include <map>
#include <utility>

#include "presence/core/fleet.h"
#include "presence/ingest/output.h"

namespace presence::ingest {

using api::ApiError;
using api::Result;
using core::DeviceIndex;
using core::MonoTime;

namespace {

MonoTime mono_now() {
  return MonoTime(std::chrono::duration_cast<core::Duration>(
      std::chrono::steady_clock::now().time_since_epoch()));
}

std::optional<core::State> parse_state(std::string_view word) {
  for (std::uint8_t i = 0; i < 5; ++i) {
    const auto s = static_cast<core::State>(i);
    if (word == state_word(s)) return s;
  }
  return std::nullopt;
}

const char* kind_word(core::IncidentKind k) {
  switch (k) {
    case core::IncidentKind::Drop: return "drop";
    case core::IncidentKind::Storm: return "storm";
    case core::IncidentKind::Blind: return "blind";
  }
  return "unknown";
}

const char* stage_word(core::IncidentStage s) {
  switch (s) {
    case core::IncidentStage::Open: return "open";
    case core::IncidentStage::Recovering: return "recovering";
    case core::IncidentStage::Stragglers: return "stragglers";
    case core::IncidentStage::Closed: return "closed";
  }
  return "unknown";
}

ApiError no_policy() {
  return ApiError::unavailable("the alert policy is not running (alerts.mode is not presence?)");
}

}  // namespace

struct ServiceApiBackend::Impl {
  Service& service;
  PolicyFn policy_fn;
  ApiBackendOptions opt;
  WallAnchor anchor;

  // ---- engine thread only ----
  struct Record {
    DeviceIndex device = core::kNoDevice;
    core::State from = core::State::Unknown, to = core::State::Unknown;
    core::Cause cause = core::Cause::Connected;
    core::DisconnectReason reason = core::DisconnectReason::Unknown;
    MonoTime at{};
  };
  std::vector<Record> ring;
  std::size_t ring_next = 0;  // slot the next record goes to

  using SegmentKey = std::pair<std::string, std::string>;
  std::map<SegmentKey, std::array<std::size_t, 5>> scan_acc;
  bool scan_truncated = false;
  bool scanning = false;
  DeviceIndex scan_next = 0;
  MonoTime next_pass{};
  MonoTime fleet_watched_until{};
  std::vector<api::SegmentCounts> segments;
  bool segments_truncated = false;
  std::optional<MonoTime> segments_at;

  Impl(Service& s, PolicyFn p, ApiBackendOptions o)
      : service(s), policy_fn(std::move(p)), opt(std::move(o)) {
    anchor.mono = mono_now();
    anchor.wall = std::chrono::system_clock::now();
  }

  core::AlertPolicy* policy() const { return policy_fn ? policy_fn() : nullptr; }
  api::WallTime wall(MonoTime t) const {
    return std::chrono::time_point_cast<api::WallTime::duration>(anchor.to_wall(t));
  }
  MonoTime mono(api::WallTime t) const {
    return anchor.mono + std::chrono::duration_cast<core::Duration>(t - anchor.wall);
  }

  void on_batch(const core::Engine& engine, const std::vector<core::Transition>& ts,
                MonoTime now) {
    if (!ts.empty() && ring.size() < opt.transition_ring) ring.reserve(opt.transition_ring);
    for (const auto& t : ts) {
      Record r{t.device, t.from, t.to, t.cause, t.disconnect_reason, t.at};
      if (ring.size() < opt.transition_ring) {
        ring.push_back(r);
      } else {
        ring[ring_next] = r;
      }
      ring_next = (ring_next + 1) % opt.transition_ring;
    }
    if (now < fleet_watched_until) scan_step(engine, now);
  }

  // One step of the segment pass: at most scan_per_batch devices.
  void scan_step(const core::Engine& engine, MonoTime now) {
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
      const auto state = static_cast<std::size_t>(engine.view(scan_next).state);
      for (auto& label : engine.labels(scan_next)) {
        auto key = SegmentKey(std::move(label.first), std::move(label.second));
        auto it = scan_acc.find(key);
        if (it == scan_acc.end()) {
          if (scan_acc.size() >= opt.max_segments) {
            scan_truncated = true;
            continue;
          }
          it = scan_acc.emplace(std::move(key), std::array<std::size_t, 5>{}).first;
        }
        ++it->second[state];
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
        s.by_state.emplace_back(state_word(static_cast<core::State>(i)), counts[i]);
      }
      segments.push_back(std::move(s));
    }
    segments_truncated = scan_truncated;
    segments_at = now;
    scanning = false;
    next_pass = now + opt.segment_interval;
  }

  api::DeviceSummary summary(const core::Engine& engine, DeviceIndex d) const {
    const auto v = engine.view(d);
    api::DeviceSummary s;
    s.id = std::string(v.id);
    s.state = state_word(v.state);
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
    s.kind = kind_word(i.kind);
    s.stage = stage_word(i.stage);
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
    for (const auto& h : i.hint)
      s.hint.push_back({h.key, h.value, h.support, h.share_in_incident, h.share_in_scope, h.lift});
    return s;
  }

  std::vector<std::string> ids(const core::Engine& engine,
                               const std::vector<DeviceIndex>& devices) const {
    std::vector<std::string> out;
    for (std::size_t k = 0; k < devices.size() && k < opt.max_ids; ++k)
      out.emplace_back(engine.id_of(devices[k]));
    return out;
  }
};

namespace {

// Runs fn on the engine thread and waits (bounded) for its answer.
template <typename T, typename Fn>
Result<T> on_engine(const std::shared_ptr<ServiceApiBackend::Impl>& impl, Fn fn) {
  auto promise = std::make_shared<std::promise<Result<T>>>();
  auto future = promise->get_future();
  const bool posted = impl->service.post([impl, promise, fn = std::move(fn)](core::Engine& e) {
    try {
      promise->set_value(fn(*impl, e));
    } catch (const std::exception& ex) {
      promise->set_value(Result<T>::fail({500, "internal", ex.what()}));
    }
  });
  if (!posted) return Result<T>::fail(ApiError::unavailable("presenced is not running"));
  if (future.wait_for(impl->opt.timeout) != std::future_status::ready)
    return Result<T>::fail(ApiError::unavailable("the engine is busy; retry"));
  try {
    return future.get();
  } catch (const std::future_error&) {  // dropped at stop: broken promise
    return Result<T>::fail(ApiError::unavailable("presenced is stopping"));
  }
}

}  // namespace

ServiceApiBackend::ServiceApiBackend(Service& service, PolicyFn policy, ApiBackendOptions options)
    : impl_(std::make_shared<Impl>(service, std::move(policy), std::move(options))) {
  if (impl_->opt.transition_ring == 0) impl_->opt.transition_ring = 1;
  // The hook keeps Impl alive for as long as the service may call it.
  service.set_transitions_hook(
      [impl = impl_](const core::Engine& e, const std::vector<core::Transition>& ts,
                     MonoTime now) { impl->on_batch(e, ts, now); });
}

ServiceApiBackend::~ServiceApiBackend() = default;

Result<api::DevicePage> ServiceApiBackend::devices(const api::DeviceQuery& q) {
  return on_engine<api::DevicePage>(impl_, [q](Impl& self, core::Engine& engine) {
    api::DevicePage page;
    page.total = engine.size();
    std::optional<core::State> state;
    if (!q.state.empty()) {
      state = parse_state(q.state);
      if (!state) return Result<api::DevicePage>::fail(ApiError::bad_request("state: unknown"));
    }
    core::AlertPolicy* policy = self.policy();
    const std::size_t n = engine.size();
    std::size_t scanned = 0;
    std::uint64_t i = q.cursor;
    for (; i < n; ++i) {
      if (page.devices.size() >= q.limit || scanned >= q.scan_budget) break;
      ++scanned;
      const auto d = static_cast<DeviceIndex>(i);
      const auto v = engine.view(d);
      if (state && v.state != *state) continue;
      if (!q.id_prefix.empty() && v.id.substr(0, q.id_prefix.size()) != q.id_prefix) continue;
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
      if (match) page.devices.push_back(self.summary(engine, d));
    }
    if (i < n) page.next = i;
    return Result<api::DevicePage>{std::move(page), {}};
  });
}

Result<api::DeviceDetail> ServiceApiBackend::device(std::string_view id) {
  return on_engine<api::DeviceDetail>(
      impl_, [id = std::string(id)](Impl& self, core::Engine& engine) {
        const auto d = engine.find(id);
        if (!d) return Result<api::DeviceDetail>::fail(ApiError::not_found("no device '" + id.substr(0, 200) + "'"));
        api::DeviceDetail out;
        out.device = self.summary(engine, *d);
        const auto v = engine.view(*d);
        out.last_seen = self.wall(v.last_seen);
        out.heartbeat_mean_ms = v.heartbeat_mean.count();
        out.heartbeat_timeout_ms = v.heartbeat_timeout.count();
        out.session = v.session;
        if (auto* p = self.policy()) out.held_by_incident = p->fleet().held_by(*d);
        // Newest first while collecting, then oldest first in the answer.
        const std::size_t size = self.ring.size();
        for (std::size_t k = 0; k < size && out.transitions.size() < self.opt.transitions_per_device;
             ++k) {
          const auto& r = self.ring[(self.ring_next + size - 1 - k) % size];
          if (r.device != *d) continue;
          api::TransitionRecord t;
          t.at = self.wall(r.at);
          t.from = state_word(r.from);
          t.to = state_word(r.to);
          t.reason = core::to_string(r.cause);
          if (r.cause == core::Cause::Disconnected) t.disconnect_reason = core::to_string(r.reason);
          out.transitions.push_back(std::move(t));
        }
        std::reverse(out.transitions.begin(), out.transitions.end());
        return Result<api::DeviceDetail>{std::move(out), {}};
      });
}

Result<api::FleetSummary> ServiceApiBackend::fleet() {
  const ServiceStats stats = impl_->service.stats();
  return on_engine<api::FleetSummary>(impl_, [stats](Impl& self, core::Engine& engine) {
    const MonoTime now = std::max(engine.now(), mono_now());
    // Someone is watching: keep the segment pass going for a minute. A fleet that fits into one
    // step is counted right now.
    self.fleet_watched_until = now + std::chrono::minutes(1);
    if (engine.size() <= self.opt.scan_per_batch) {
      self.scanning = false;  // cheap enough: a fresh complete pass for every request
      self.segments_at.reset();
      self.scan_step(engine, now);
    }
    api::FleetSummary f;
    f.at = self.wall(now);
    f.devices = engine.size();
    const auto counts = engine.counts();
    for (std::size_t i = 0; i < counts.size(); ++i)
      f.by_state.emplace_back(state_word(static_cast<core::State>(i)), counts[i]);
    f.broker_connected = stats.broker_connected;
    f.blind = engine.blind() || !stats.broker_connected;
    f.restart_grace = engine.in_restart_grace();
    f.segments = self.segments;
    f.segments_truncated = self.segments_truncated;
    if (self.segments_at) f.segments_at = self.wall(*self.segments_at);
    return Result<api::FleetSummary>{std::move(f), {}};
  });
}

Result<std::vector<api::IncidentSummary>> ServiceApiBackend::incidents() {
  using R = Result<std::vector<api::IncidentSummary>>;
  return on_engine<std::vector<api::IncidentSummary>>(impl_, [](Impl& self, core::Engine&) {
    auto* p = self.policy();
    if (!p) return R::fail(no_policy());
    R r;
    for (const auto* i : p->fleet().incidents()) r.value.push_back(self.incident_summary(*i));
    return r;
  });
}

Result<api::IncidentDetail> ServiceApiBackend::incident(std::uint32_t id) {
  using R = Result<api::IncidentDetail>;
  return on_engine<api::IncidentDetail>(impl_, [id](Impl& self, core::Engine& engine) {
    auto* p = self.policy();
    if (!p) return R::fail(no_policy());
    const core::Incident* i = p->fleet().incident(id);
    if (!i) return R::fail(ApiError::not_found("no incident " + std::to_string(id)));
    R r;
    r.value.incident = self.incident_summary(*i);
    r.value.held_devices = self.ids(engine, i->held);
    r.value.still_held_devices = self.ids(engine, p->held(id));
    r.value.straggler_devices = self.ids(engine, i->stragglers);
    for (const auto& a : p->firing())
      if (a.incident == id) r.value.alerts.push_back(a.dedup_key);
    return r;
  });
}

namespace {
api::SilenceView view_of(const ServiceApiBackend::Impl& self, const core::Silence& s) {
  api::SilenceView v;
  v.id = s.id;
  v.match = s.match;
  v.starts_at = self.wall(s.starts_at);
  v.ends_at = self.wall(s.ends_at);
  v.comment = s.comment;
  return v;
}
}  // namespace

Result<std::vector<api::SilenceView>> ServiceApiBackend::silences() {
  using R = Result<std::vector<api::SilenceView>>;
  return on_engine<std::vector<api::SilenceView>>(impl_, [](Impl& self, core::Engine&) {
    auto* p = self.policy();
    if (!p) return R::fail(no_policy());
    R r;
    for (const auto& s : p->silences()) r.value.push_back(view_of(self, s));
    return r;
  });
}

Result<api::SilenceView> ServiceApiBackend::add_silence(const api::NewSilence& n) {
  using R = Result<api::SilenceView>;
  return on_engine<api::SilenceView>(impl_, [n](Impl& self, core::Engine& engine) {
    auto* p = self.policy();
    if (!p) return R::fail(no_policy());
    const MonoTime now = std::max(engine.now(), mono_now());
    core::Silence s;
    s.match = n.match;
    s.starts_at = n.starts_at ? self.mono(*n.starts_at) : now;
    s.ends_at = self.mono(n.ends_at);
    s.comment = n.comment;
    if (s.ends_at <= now) return R::fail(ApiError::bad_request("ends_at is in the past"));
    if (s.ends_at <= s.starts_at)
      return R::fail(ApiError::bad_request("ends_at must be after starts_at"));
    s.id = p->add_silence(s);
    if (s.id == 0) return R::fail(ApiError::bad_request("the policy refused this silence"));
    R r;
    r.value = view_of(self, s);
    return r;
  });
}

Result<bool> ServiceApiBackend::remove_silence(std::uint64_t id) {
  return on_engine<bool>(impl_, [id](Impl& self, core::Engine& engine) {
    auto* p = self.policy();
    if (!p) return Result<bool>::fail(no_policy());
    return Result<bool>{p->remove_silence(id, std::max(engine.now(), mono_now())), {}};
  });
}

}  // namespace presence::ingest
