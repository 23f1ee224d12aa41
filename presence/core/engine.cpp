// The engine wires interning, the per-device state machine, the flap detector, the timing wheel
// and the fleet-level gates (blind, restart grace). docs/core.md describes the rules; comments
// here say why a branch exists.
#include "presence/core/engine.h"

#include <algorithm>
#include <cassert>
#include <limits>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "presence/core/chunked.h"
#include "presence/core/device_state.h"
#include "presence/core/flap.h"
#include "presence/core/id_table.h"
#include "presence/core/snapshot_slicer.h"
#include "presence/core/timer_wheel.h"

namespace presence::core {

namespace {

// Label keys/values interned to small ids; a device points at one interned label set, so a million
// devices with a handful of distinct (site, firmware, model) combinations cost 4 bytes each.
//
// Bounded (issue 19 item 3: births whose label keys changed per message took RSS to 3.3 GB, and
// the cost grew faster than the keys): at most max_keys distinct keys and max_values distinct
// key=value pairs are ever admitted (each becomes a fleet segment for good); a label beyond them is
// refused. Sets are reference-counted by the devices using them and freed when none does, so the
// sets held are at most one per device plus the empty set, whatever the churn.
class LabelPool {
 public:
  enum class Outcome : std::uint8_t { Ok, KeyRefused, ValueRefused };

  LabelPool(std::uint32_t max_keys, std::uint32_t max_values)
      : max_keys_(max_keys), max_values_(max_values) {
    sets_.emplace_back();  // set 0 = no labels, never freed
    refs_.push_back(0);
  }

  // The set `set` with key=value applied ("" removes the key); the caller then moves the device
  // with retain(new) and release(old). On a refusal `set` is returned unchanged.
  std::uint32_t with(std::uint32_t set, std::string_view key, std::string_view value,
                     Outcome& outcome) {
    outcome = Outcome::Ok;
    const auto known_key = find_str(key);
    if (value.empty() && !known_key) return set;  // nothing to remove
    std::uint32_t k = 0;
    if (known_key && is_key(*known_key)) {
      k = *known_key;
    } else {
      if (value.empty()) return set;
      if (keys_ >= max_keys_) {
        outcome = Outcome::KeyRefused;
        return set;
      }
      k = str(key);
      mark_key(k);
    }
    std::vector<std::pair<std::uint32_t, std::uint32_t>> labels = sets_[set];
    auto it = std::find_if(labels.begin(), labels.end(), [&](const auto& kv) { return kv.first == k; });
    if (value.empty()) {
      if (it == labels.end()) return set;
      labels.erase(it);
    } else {
      const auto known_value = find_str(value);
      std::uint32_t v = 0;
      if (known_value && pairs_.count(pair_key(k, *known_value))) {
        v = *known_value;
      } else {
        if (pairs_.size() >= max_values_) {
          outcome = Outcome::ValueRefused;
          return set;
        }
        v = str(value);
        pairs_.insert(pair_key(k, v));
      }
      if (it != labels.end()) {
        it->second = v;
      } else {
        labels.emplace_back(k, v);
        std::sort(labels.begin(), labels.end(), [&](const auto& a, const auto& b) {
          return strings_[a.first] < strings_[b.first];
        });
      }
    }
    if (auto found = index_.find(labels); found != index_.end()) return found->second;
    std::uint32_t id = 0;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
      sets_[id] = labels;
      refs_[id] = 0;
    } else {
      id = static_cast<std::uint32_t>(sets_.size());
      sets_.push_back(labels);
      refs_.push_back(0);
    }
    index_.emplace(std::move(labels), id);
    return id;
  }

  void retain(std::uint32_t set) {
    if (set != 0) ++refs_[set];
  }
  void release(std::uint32_t set) {
    if (set == 0 || set >= refs_.size() || refs_[set] == 0) return;
    if (--refs_[set] != 0) return;
    index_.erase(sets_[set]);
    std::vector<std::pair<std::uint32_t, std::uint32_t>>().swap(sets_[set]);
    free_.push_back(set);
  }

  // True if set already maps key to value (an empty value: key absent). No allocation.
  bool has(std::uint32_t set, std::string_view key, std::string_view value) const {
    if (set >= sets_.size()) return false;
    for (const auto& [k, v] : sets_[set]) {
      if (strings_[k] == key) return strings_[v] == value;
    }
    return value.empty();
  }

  std::vector<Label> labels(std::uint32_t set) const {
    std::vector<Label> out;
    if (set >= sets_.size()) return out;
    for (const auto& [k, v] : sets_[set]) out.emplace_back(strings_[k], strings_[v]);
    return out;
  }

  std::size_t live_sets() const { return sets_.size() - free_.size(); }

  // Approximate heap bytes (for Engine::memory_bytes): node overheads counted as 48 bytes.
  std::size_t bytes() const {
    std::size_t b = sets_.capacity() * (sizeof(sets_[0]) + sizeof(std::uint32_t)) +
                    free_.capacity() * sizeof(std::uint32_t) + key_flags_.capacity() +
                    pairs_.size() * 48 + string_index_.size() * 48;
    for (const auto& set : sets_) b += set.capacity() * sizeof(set[0]) * 2 + (set.empty() ? 0 : 48);
    for (const auto& str : strings_) b += sizeof(str) + str.capacity();
    return b;
  }

 private:
  static std::uint64_t pair_key(std::uint32_t k, std::uint32_t v) {
    return (static_cast<std::uint64_t>(k) << 32) | v;
  }
  std::optional<std::uint32_t> find_str(std::string_view s) const {
    auto it = string_index_.find(s);
    if (it == string_index_.end()) return std::nullopt;
    return it->second;
  }
  bool is_key(std::uint32_t s) const { return s < key_flags_.size() && key_flags_[s]; }
  void mark_key(std::uint32_t s) {
    if (key_flags_.size() <= s) key_flags_.resize(static_cast<std::size_t>(s) + 1, 0);
    key_flags_[s] = 1;
    ++keys_;
  }
  std::uint32_t str(std::string_view s) {
    if (auto known = find_str(s)) return *known;
    const auto id = static_cast<std::uint32_t>(strings_.size());
    strings_.emplace_back(s);
    string_index_.emplace(strings_.back(), id);
    return id;
  }

  // Transparent lookup: finding a string_view allocates nothing.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  const std::uint32_t max_keys_;
  const std::uint32_t max_values_;
  std::uint32_t keys_ = 0;
  std::deque<std::string> strings_;  // stable addresses: string_index_ keys view into them
  std::unordered_map<std::string_view, std::uint32_t, Hash, std::equal_to<>> string_index_;
  std::vector<std::uint8_t> key_flags_;
  std::unordered_set<std::uint64_t> pairs_;
  std::vector<std::vector<std::pair<std::uint32_t, std::uint32_t>>> sets_;
  std::vector<std::uint32_t> refs_;
  std::vector<std::uint32_t> free_;
  std::map<std::vector<std::pair<std::uint32_t, std::uint32_t>>, std::uint32_t> index_;
};

}  // namespace

struct Engine::Impl {
  explicit Impl(const Config& c) : config(c), flap(c) {
    for (std::size_t k = 0; k <= c.device_classes.size(); ++k)
      classes.push_back(class_config(c, k));
  }

  Config config;
  // classes[k]: the values for a device of class k (classes[0] = config without classes).
  std::vector<Config> classes;
  const Config& cfg(const DeviceRecord& d) const {
    return d.device_class < classes.size() ? classes[d.device_class] : classes[0];
  }
  FlapDetector flap;
  IdTable ids;
  // In 2 MiB chunks of huge pages: a random record per event (presence/core/huge_pages.h), no
  // 2x growth slack and no copy when the fleet grows (presence/core/chunked.h, issue 16).
  ChunkedArray<DeviceRecord, 15> devices;
  TimerWheel wheel{0};
  LabelPool label_pool{config.max_label_keys, config.max_label_values};
  std::vector<Transition> out;
  std::vector<AlertIntent> alerts;
  std::array<std::size_t, 5> counts{};
  EngineCounters counters;
  DecisionObserver* observer = nullptr;
  std::int64_t now = 0;
  // Forgotten indices wait two drain()s before they may name another id: decisions already
  // emitted for them are read by the adapters (id_of) after the drain of their batch too
  // (presence/server/loop.h: the engine step drains them, later steps of the batch read them).
  std::vector<DeviceIndex> forgotten;
  std::vector<DeviceIndex> forgotten_drained;
  std::vector<DeviceIndex> unstarted;  // interned, expiry clock not started yet (advance_to)
  std::vector<std::string> forgotten_ids;

  // Fleet-level gates (issue 3's blind-spot rules).
  bool blind = false;
  bool in_grace = false;
  std::uint32_t grace_epoch = 0;
  std::int64_t grace_start = 0;
  std::int64_t last_growth = 0;
  std::size_t grace_known = 0;
  std::size_t grace_returned = 0;
  std::uint16_t session_epoch = 0;
  // The broker restarted during the current grace (or while blind before it): retained replays
  // are not evidence (mosquitto #1165).
  bool grace_broker_restarted = false;
  bool broker_restarted_while_blind = false;
  // Overload (issue 16, Lifeguard's local health): while presenced is behind, heartbeats can be
  // late or lost before they reach the engine, so silence is not evidence. While overloaded no
  // silence is judged; when it ends, every silence clock restarts at overload_end (a device owes
  // one full timeout, and a silent suspect one full offline_grace, of silence observed while
  // healthy). Lifeguard stretches the timeouts by a multiplier instead; a multiplier still
  // convicts when the overload outlasts (m - 1) x timeout, and the issue asks for zero.
  bool overloaded = false;
  std::int64_t overload_end = kNever;

  // Event pipeline (Engine::on_event): a few events in flight so their devices are prefetched.
  static constexpr std::size_t kPipeline = 8;
  std::array<Event, kPipeline> pending{};
  std::size_t pending_head = 0;
  std::size_t pending_count = 0;
  bool processing = false;  // an observer reading the engine mid-event must not re-enter

  // always_inline: GCC 12 treats a function whose only effect is __builtin_prefetch as pure and
  // deletes the call (measured: no prefetch instruction left, half the throughput).
  [[gnu::always_inline]] void prefetch(DeviceIndex device) const {
    if (device < devices.size()) {
      __builtin_prefetch(&devices[device]);
      wheel.prefetch(device);
    }
  }

  void process_oldest() {
    const Event e = pending[pending_head];
    pending_head = (pending_head + 1) % kPipeline;
    --pending_count;
    processing = true;
    process(e);
    processing = false;
  }

  void flush() {
    if (processing) return;
    while (pending_count > 0) process_oldest();
  }

  void process(const Event& event) {
    ++counters.events;
    const std::int64_t t = std::max(to_ms(event.at), now);
    // An overload is noticed after it began (a stalled engine thread learns of its stall when it
    // runs again): the time since the engine's last event was not observed either, so it is
    // gated before time moves, not after (else the catch-up convicts: issue 16's stall test).
    if (event.kind == EventKind::OverloadBegan) begin_overload(t);
    advance_to(t);
    switch (event.kind) {
      case EventKind::Connected:
      case EventKind::Heartbeat:
      case EventKind::Disconnected:
        on_device(event, t);
        break;
      default:
        on_fleet(event, t);
        break;
    }
  }

  // ---- helpers ----------------------------------------------------------------------------

  std::int64_t grace_deadline() const {
    const std::int64_t lo = grace_start + config.restart_grace_min.count();
    const std::int64_t hi = grace_start + std::max(config.restart_grace_max, config.restart_grace_min).count();
    return std::clamp(last_growth + config.restart_grace_settle.count(), lo, hi);
  }

  // Nobody becomes offline while presenced is blind or in restart grace: the silence it would act
  // on was not observed (issue 3; incident 002: a restart of the presence service itself marked
  // agents offline).
  bool offline_gated() const { return blind || in_grace; }
  // Live (non-retained) evidence since the current grace began.
  bool fresh(const DeviceRecord& d) const { return in_grace && d.evidence_epoch == grace_epoch; }
  // What the grace end accepts: live evidence, or a retained "online" replay if the broker did not
  // restart (same boot: the device's will would have replaced it had the device died).
  bool evidence_at_grace_end(const DeviceRecord& d) const {
    if ((d.evidence_epoch & DeviceRecord::kEpochMask) != grace_epoch) return false;
    return (d.evidence_epoch & DeviceRecord::kRetainedEvidence) == 0 || !grace_broker_restarted;
  }
  // Silence is only judged when it was observed: not while blind, and during restart grace only
  // for devices that showed fresh evidence (their silence since then was seen).
  bool silence_gated(const DeviceRecord& d) const {
    return blind || overloaded || (in_grace && !fresh(d));
  }
  // Silence is counted from the last proof of life, or from the end of the last overload.
  std::int64_t silence_deadline(const DeviceRecord& d) const {
    return add_sat(std::max(d.last_seen, overload_end), timeout_of(d));
  }
  // Down for offline_grace: a device down on silence alone is not convicted while overloaded and
  // owes a full offline_grace after it; a disconnect (a will, a broker session event) is
  // evidence and is judged as usual.
  bool offline_blocked(const DeviceRecord& d) const {
    return offline_gated() || (overloaded && d.has(DeviceRecord::kSilent));
  }
  std::int64_t offline_deadline(const DeviceRecord& d) const {
    const std::int64_t from =
        d.has(DeviceRecord::kSilent) ? std::max(d.changed_at, overload_end) : d.changed_at;
    return add_sat(from, cfg(d).offline_grace.count());
  }

  std::int64_t timeout_of(const DeviceRecord& d) const {
    return heartbeat_timeout(cfg(d), d.heartbeat_mean_ms, d.heartbeat_samples).count();
  }

  void emit(DeviceIndex i, DeviceRecord& d, State to, Cause cause, std::int64_t at) {
    assert(d.state != to);
    Transition t;
    t.device = i;
    t.from = d.state;
    t.to = to;
    t.cause = cause;
    t.disconnect_reason = d.reason;
    t.at = mono_ms(at);
    --counts[static_cast<std::size_t>(d.state)];
    ++counts[static_cast<std::size_t>(to)];
    d.state = to;
    d.since = at;
    d.cause = cause;
    out.push_back(t);
    ++counters.transitions;
    if (observer != nullptr) observer->on_transition(t);
  }

  // One flap observation at t. Returns true if it started a flap.
  bool observe(DeviceIndex i, DeviceRecord& d, bool changed, std::int64_t t) {
    d.flap_bits = flap.catch_up(d.flap_bits, d.flap_clock, t);
    d.flap_bits = flap.observe(d.flap_bits, changed);
    d.flap_clock = t;
    if (d.state != State::Flapping && flap.starts(d.flap_bits)) {
      // One `flapping` decision for the whole episode, not one per bounce (issue 2).
      emit(i, d, State::Flapping, Cause::FlapStart, t);
      return true;
    }
    return false;
  }

  // Apply everything due for device i at time t (timers and the state rules).
  void evaluate(DeviceIndex i, std::int64_t t, Cause up_cause) {
    DeviceRecord& d = devices[i];
    // Silence: an up, heartbeating device that said nothing for its adaptive timeout.
    if (d.has(DeviceRecord::kUp) && d.has(DeviceRecord::kHeartbeats) && !silence_gated(d)) {
      if (t >= silence_deadline(d)) {
        // The heartbeat chain survives silence: if the device comes back without reconnecting,
        // the gap is a (clamped) sample, so a device whose period grew adapts (docs/core.md).
        d.set(DeviceRecord::kUp, false);
        d.set(DeviceRecord::kSilent, true);
        d.changed_at = t;
        observe(i, d, true, t);
      }
    }
    const bool up = d.has(DeviceRecord::kUp);
    switch (d.state) {
      case State::Unknown:
        if (up) emit(i, d, State::Online, up_cause, t);
        else if (d.has(DeviceRecord::kSeen)) emit(i, d, State::Suspect, down_cause(d), t);
        break;
      case State::Online:
        if (!up) emit(i, d, State::Suspect, down_cause(d), t);
        break;
      case State::Suspect:
        if (up) {
          emit(i, d, State::Online, up_cause, t);
        } else if (!offline_blocked(d) && t >= offline_deadline(d)) {
          emit(i, d, State::Offline,
               d.has(DeviceRecord::kSilent) ? Cause::HeartbeatTimeout : Cause::OfflineGrace, t);
        }
        break;
      case State::Offline:
        // Hysteresis: back online only after online_stable_for without a departure.
        if (up && t >= d.changed_at + config.online_stable_for.count()) {
          emit(i, d, State::Online, Cause::StableOnline, t);
        }
        break;
      case State::Flapping: {
        d.flap_bits = flap.catch_up(d.flap_bits, d.flap_clock, t);
        if (!flap.stops(d.flap_bits)) break;
        // A flap ends only into a settled state: up for online_stable_for, or down for
        // offline_grace.
        if (up && t >= d.changed_at + config.online_stable_for.count()) {
          emit(i, d, State::Online, Cause::FlapStop, t);
        } else if (!up && !offline_blocked(d) && t >= offline_deadline(d)) {
          emit(i, d, State::Offline, Cause::FlapStop, t);
        }
        break;
      }
    }
  }

  static Cause down_cause(const DeviceRecord& d) {
    return d.has(DeviceRecord::kSilent) ? Cause::HeartbeatTimeout : Cause::Disconnected;
  }

  // Next time device i needs attention (kNeverDue = none), given the state after evaluate(t).
  std::int64_t next_deadline(const DeviceRecord& d, std::int64_t t) const {
    std::int64_t dl = kNeverDue;
    const bool up = d.has(DeviceRecord::kUp);
    if (up && d.has(DeviceRecord::kHeartbeats) && !silence_gated(d)) {
      dl = std::min(dl, silence_deadline(d));
    }
    switch (d.state) {
      case State::Suspect:
        if (!offline_blocked(d)) dl = std::min(dl, offline_deadline(d));
        break;
      case State::Offline:
        if (up) dl = std::min(dl, d.changed_at + config.online_stable_for.count());
        break;
      case State::Flapping: {
        const std::int64_t k = flap.quiet_shifts_to_stop(d.flap_bits);
        const std::int64_t stop_at = k == 0 ? t : d.flap_clock + k * flap.step().count();
        std::int64_t settle_at = kNeverDue;
        if (up) settle_at = d.changed_at + config.online_stable_for.count();
        else if (!offline_blocked(d)) settle_at = offline_deadline(d);
        if (settle_at != kNeverDue) dl = std::min(dl, std::max(stop_at, settle_at));
        break;
      }
      default:
        break;
    }
    if (forgettable(d)) dl = std::min(dl, forget_deadline(d));
    if (dl != kNeverDue && dl <= t) dl = t + 1;  // never re-arm into the past (would loop)
    return dl;
  }

  void reschedule(DeviceIndex i, std::int64_t t) {
    const std::int64_t dl = next_deadline(devices[i], t);
    if (dl == kNeverDue) {
      wheel.cancel(i);
      return;
    }
    // Re-armed at the exact deadline with every heartbeat: a re-arm no longer unlinks (it
    // writes the expiry, and appends the id when the deadline moved to another slot), so the
    // earlier "lazy re-arm" (keep the earlier timer, let it fire early and re-arm then) stopped
    // paying: measured in docs/benchmarks.md "Issue 16: the core".
    wheel.schedule(i, dl);
  }

  void fire_timers(std::int64_t t) {
    wheel.advance(t, [&](TimerWheel::Id id, std::int64_t expiry) {
      ++counters.timers_fired;
      const std::int64_t at = std::max(expiry, now);
      now = at;
      evaluate(id, at, Cause::Heartbeat);
      if (try_forget(id, at)) return;
      reschedule(id, at);
    });
  }

  // A new id (or a known one: then its index). kNoDevice beyond max_devices.
  DeviceIndex intern_new(std::string_view id) {
    const std::size_t before = ids.live();
    // presence.max_devices (issue 19 item 9: 200,000 junk ids in a minute were all kept).
    if (config.max_devices != 0 && before >= config.max_devices) {
      if (auto known = ids.find(id)) return *known;
      ++counters.devices_refused;
      return kNoDevice;
    }
    const auto index = ids.intern(id);
    if (index == IdTable::kNone) return kNoDevice;
    if (ids.live() == before) return index;
    if (index < devices.size()) {
      devices[index] = DeviceRecord{};  // a forgotten index reused
    } else {
      devices.push_back(DeviceRecord{});
      wheel.reserve_ids(devices.size());
    }
    ++counts[static_cast<std::size_t>(State::Unknown)];
    // An id that never sends a usable event (a retained heartbeat, a refused message) must
    // expire too: its clock starts with the first time the engine moves after interning (the
    // engine's time can lag the caller's: its first event must not find it expired already).
    unstarted.push_back(index);
    return index;
  }

  // ---- expiry (issue 19 item 9) -------------------------------------------------------------

  // Only a device that is down and settled can be forgotten: not up, not judged (Suspect and
  // Flapping still have a decision to make), and only while presenced can observe silence.
  bool forgettable(const DeviceRecord& d) const {
    if (d.has(DeviceRecord::kUp) || d.has(DeviceRecord::kForgotten)) return false;
    if (d.state != State::Offline && d.state != State::Unknown) return false;
    // Not while overloaded either: forgetting is a judgement on silence too.
    return forget_window(d) > 0 && !offline_gated() && !overloaded;
  }
  std::int64_t forget_window(const DeviceRecord& d) const {
    return (d.has(DeviceRecord::kConfirmed) ? config.forget_after : config.forget_unconfirmed_after)
        .count();
  }
  // Last evidence or change (a vetoed attempt counts as a change: the next one is a window later).
  std::int64_t forget_deadline(const DeviceRecord& d) const {
    const std::int64_t last = std::max({d.last_seen, d.changed_at, d.since});
    const std::int64_t w = forget_window(d);
    // w >= 0; last may be any restored time (a crafted snapshot: far in the past or future), so
    // the sum saturates at kNeverDue instead of overflowing (found by the snapshot fuzz target).
    return add_sat(last, w);
  }

  void start_expiry_clocks(std::int64_t t) {
    for (DeviceIndex i : unstarted) {
      DeviceRecord& d = devices[i];
      if (d.state != State::Unknown || d.has(DeviceRecord::kSeen) ||
          d.has(DeviceRecord::kForgotten) || wheel.armed(i))
        continue;
      d.since = t;
      d.changed_at = t;
      reschedule(i, t);
    }
    unstarted.clear();
    if (unstarted.capacity() > 4096) std::vector<DeviceIndex>().swap(unstarted);
  }

  bool try_forget(DeviceIndex i, std::int64_t t) {
    DeviceRecord& d = devices[i];
    if (!forgettable(d) || t < forget_deadline(d)) return false;
    if (observer != nullptr && !observer->may_forget(i)) {
      ++counters.forget_deferred;
      // Asked again a window later. changed_at of a down, settled device is read by nothing
      // else until the device comes up again (which sets it anew; the reorder guard in
      // on_device may hold back one heartbeat arriving within reorder_window of this moment,
      // the next one counts); the record has no spare byte.
      d.changed_at = t;
      return false;
    }
    forget(i);
    return true;
  }

  void forget(DeviceIndex i) {
    DeviceRecord& d = devices[i];
    --counts[static_cast<std::size_t>(d.state)];
    label_pool.release(d.labels);
    wheel.cancel(i);
    if (observer != nullptr) observer->on_forget(i);
    forgotten_ids.emplace_back(ids.id_of(i));
    ids.erase(i);
    forgotten.push_back(i);
    d = DeviceRecord{};
    d.flags = DeviceRecord::kForgotten;
    ++counters.devices_forgotten;
  }

  // drain(): forgotten indices become reusable; a free tail gives its memory back.
  void release_forgotten() {
    if (forgotten.empty() && forgotten_drained.empty()) return;
    for (DeviceIndex i : forgotten_drained) ids.release(i);
    forgotten_drained.swap(forgotten);
    forgotten.clear();
    if (forgotten.capacity() > 4096) std::vector<DeviceIndex>().swap(forgotten);
    if (ids.size() < devices.size()) {
      devices.resize(ids.size());  // gives whole chunks back
      wheel.shrink_ids(devices.size());
    }
  }

  // Move time to t: fire timers in order, end restart grace at its exact deadline.
  void advance_to(std::int64_t t) {
    if (t < now) t = now;
    if (!unstarted.empty()) start_expiry_clocks(t);
    while (in_grace && !blind) {
      const std::int64_t gd = grace_deadline();
      if (gd > t) break;
      fire_timers(gd);
      now = std::max(now, gd);
      end_grace(now);
    }
    fire_timers(t);
    now = t;
  }

  void start_grace(std::int64_t t) {
    in_grace = true;
    grace_epoch = (grace_epoch + 1) & DeviceRecord::kEpochMask;
    grace_broker_restarted = broker_restarted_while_blind;
    broker_restarted_while_blind = false;
    grace_start = t;
    last_growth = t;
    grace_returned = 0;
    grace_known = devices.size() - counts[static_cast<std::size_t>(State::Unknown)];
    ++counters.restart_graces;
    if (observer != nullptr) observer->on_restart_grace(true, mono_ms(t));
  }

  void end_grace(std::int64_t t) {
    in_grace = false;
    if (observer != nullptr) observer->on_restart_grace(false, mono_ms(t));
    for (DeviceIndex i = 0; i < devices.size(); ++i) {
      DeviceRecord& d = devices[i];
      if (d.state == State::Unknown) {
        if (!d.has(DeviceRecord::kForgotten)) reschedule(i, t);  // expiry was gated
        continue;
      }
      if (!evidence_at_grace_end(d)) {
        // No fresh evidence since the grace began: the old state is not proof of life
        // (mosquitto #1165 replays a retained "online" after a broker restart).
        const bool was_up = d.has(DeviceRecord::kUp);
        d.set(DeviceRecord::kUp, false);
        d.set(DeviceRecord::kChain, false);
        if (was_up) d.changed_at = t;
        wheel.cancel(i);
        if (d.state != State::Offline) {
          d.reason = DisconnectReason::Unknown;
          emit(i, d, State::Offline, Cause::RestartGrace, t);
        }
        reschedule(i, t);  // expiry: no timer is left otherwise
        continue;
      }
      Cause up_cause = Cause::Heartbeat;
      if ((d.evidence_epoch & DeviceRecord::kRetainedEvidence) != 0 && !d.has(DeviceRecord::kUp)) {
        // Only a retained "online" of the same broker boot: that is the current truth (any
        // departure since would have replaced it with the will, live). A device restored
        // offline/suspect is up now; from offline it still owes online_stable_for, counted from
        // here. Without this it stayed offline while connected and its page never resolved
        // (issue 19 item 1).
        d.set(DeviceRecord::kUp, true);
        d.set(DeviceRecord::kSilent, false);
        d.set(DeviceRecord::kChain, false);
        d.changed_at = t;
        d.reason = DisconnectReason::Unknown;
        up_cause = Cause::Resync;
      }
      evaluate(i, t, up_cause);
      reschedule(i, t);
    }
  }

  void mark_fresh(DeviceRecord& d, std::int64_t t) {
    if (!in_grace || d.evidence_epoch == grace_epoch) return;
    d.evidence_epoch = grace_epoch;  // also upgrades retained-only evidence
    ++grace_returned;
    if (!blind) last_growth = t;
  }

  // A retained "online" replay: evidence only if the broker did not restart; never growth of the
  // returning share, never proof of life for silence.
  void mark_retained(DeviceRecord& d) {
    if (!in_grace || (d.evidence_epoch & DeviceRecord::kEpochMask) == grace_epoch) return;
    d.evidence_epoch = grace_epoch | DeviceRecord::kRetainedEvidence;
  }

  void begin_overload(std::int64_t t) {
    if (overloaded) return;
    overloaded = true;
    ++counters.overloads;
    if (observer != nullptr) observer->on_overload(true, mono_ms(t));
  }

  void on_fleet(const Event& e, std::int64_t t) {
    switch (e.kind) {
      case EventKind::IngestLost:
        if (!blind && observer != nullptr) observer->on_blind(true, mono_ms(t));
        blind = true;
        break;
      case EventKind::IngestRestored:
        if (blind && observer != nullptr) observer->on_blind(false, mono_ms(t));
        blind = false;
        start_grace(t);
        break;
      case EventKind::BrokerRestarted:
        // Session ids restart with the broker boot: older ids must not make new sessions stale.
        ++session_epoch;
        if (blind) {
          broker_restarted_while_blind = true;  // the grace starts at IngestRestored
          break;
        }
        if (in_grace) {
          // Live evidence since the grace began already came from the new broker; restart the
          // bounds.
          grace_start = t;
          last_growth = t;
        } else {
          start_grace(t);
        }
        grace_broker_restarted = true;
        break;
      case EventKind::OverloadBegan:
        break;  // process(): begin_overload, before time moved
      case EventKind::OverloadEnded:
        if (!overloaded) break;
        overloaded = false;
        overload_end = t;
        if (observer != nullptr) observer->on_overload(false, mono_ms(t));
        // Timers of silence were dropped while overloaded (next_deadline left them out): arm
        // every device again, its silence now counted from t. O(devices), once per overload.
        for (DeviceIndex i = 0; i < devices.size(); ++i) {
          if (!devices[i].has(DeviceRecord::kForgotten)) reschedule(i, t);
        }
        break;
      default:
        break;
    }
  }

  void on_device(const Event& e, std::int64_t t) {
    if (e.device >= devices.size()) {
      ++counters.invalid_events;
      return;
    }
    if (devices[e.device].has(DeviceRecord::kForgotten)) {
      // Forgotten earlier in this batch (its index is not reused before drain()): the id spoke
      // again, so it is a device again, under a new index.
      const std::string id(ids.id_of(e.device));
      const DeviceIndex again = id.empty() ? kNoDevice : intern_new(id);
      if (again == kNoDevice || devices[again].has(DeviceRecord::kForgotten)) {
        ++counters.invalid_events;
        return;
      }
      Event copy = e;
      copy.device = again;
      on_device(copy, t);
      return;
    }
    const DeviceIndex i = e.device;
    DeviceRecord& d = devices[i];
    if (e.kind == EventKind::Heartbeat && heartbeat_fast(i, d, e, t)) return;
    if (e.retained) {
      on_retained(i, d, e, t);
      return;
    }
    const std::uint64_t cur = d.session_epoch == session_epoch ? d.session : 0;
    bool ended = d.has(DeviceRecord::kSessionEnded);
    const SessionCheck v = judge(e.kind, e.reason, cur, ended, e.session);
    if (v == SessionCheck::Stale) {
      ++counters.stale_events;
      return;
    }
    if (v == SessionCheck::Duplicate) {
      ++counters.duplicate_events;
      return;
    }
    if (v == SessionCheck::Takeover) {
      ++counters.takeover_events;
      return;
    }
    const bool was_up = d.has(DeviceRecord::kUp);
    const bool was_seen = d.has(DeviceRecord::kSeen);
    // A heartbeat from the other connection right after a reported departure may predate it
    // (Config::reorder_window). changed_at is the departure's time: the will turned the device
    // down (a device already down keeps an older changed_at, and nothing of it is in flight).
    if (e.kind == EventKind::Heartbeat && e.unordered && e.session == 0 && ended && !was_up &&
        t - d.changed_at < config.reorder_window.count()) {
      ++counters.reordered_heartbeats;
      return;
    }
    // A disconnect by arrival (no session) for a device already down adds nothing.
    if (e.kind == EventKind::Disconnected && !was_up && e.session == 0 && ended &&
        !d.has(DeviceRecord::kSilent)) {
      ++counters.duplicate_events;
      return;
    }
    mark_fresh(d, t);
    if (was_seen) d.set(DeviceRecord::kConfirmed, true);
    d.set(DeviceRecord::kSeen, true);
    const bool new_session = e.session != 0 && e.session != cur;
    if (e.session != 0) {
      d.session = e.session;
      d.session_epoch = session_epoch;
    }
    Cause up_cause = Cause::Connected;
    switch (e.kind) {
      case EventKind::Connected:
        d.set(DeviceRecord::kSessionEnded, false);
        d.set(DeviceRecord::kChain, false);
        d.set(DeviceRecord::kUp, true);
        // Asleep (Homie "sleeping"): up, and silent by design until its next heartbeat.
        if (e.asleep) d.set(DeviceRecord::kHeartbeats, false);
        d.last_seen = t;
        break;
      case EventKind::Heartbeat:
        up_cause = Cause::Heartbeat;
        if (new_session) {
          d.set(DeviceRecord::kSessionEnded, false);
          d.set(DeviceRecord::kChain, false);
        }
        // Interval samples only between heartbeats of one connection: a reconnect or an outage
        // in between is not the device's heartbeat period.
        if (d.has(DeviceRecord::kChain) && d.last_seen != kNever) {
          // A gap longer than twice the current timeout is mostly outage, not period: clamp it so
          // one outage inflates the mean by at most (2 x timeout - mean) / 4.
          const std::int64_t gap = std::min(t - d.last_seen, 2 * timeout_of(d));
          d.heartbeat_mean_ms =
              heartbeat_mean_update(cfg(d), d.heartbeat_mean_ms, d.heartbeat_samples, gap);
          if (d.heartbeat_samples < 255) ++d.heartbeat_samples;
        }
        d.set(DeviceRecord::kChain, true);
        d.set(DeviceRecord::kHeartbeats, true);
        d.set(DeviceRecord::kUp, true);
        d.last_seen = t;
        break;
      case EventKind::Disconnected:
        d.set(DeviceRecord::kSessionEnded, true);
        d.set(DeviceRecord::kChain, false);
        d.set(DeviceRecord::kUp, false);
        d.reason = e.reason;
        break;
      default:
        break;
    }
    const bool up = d.has(DeviceRecord::kUp);
    if (up != was_up) {
      d.changed_at = t;
      d.set(DeviceRecord::kSilent, false);
    } else if (!up) {
      d.set(DeviceRecord::kSilent, false);  // a reported departure explains the silence
    }
    if (up) d.reason = DisconnectReason::Unknown;
    // Heartbeats on an up device are not flap observations (see flap.h).
    // A connect is a (re)connection only if the device was not up: broker-ext's "connected" and
    // the device's birth right after it are one connection, not a reconnect (the storm
    // benchmark's ramp counted every birth as a reconnect and paged "Reconnect storm").
    if (e.kind == EventKind::Connected && !was_up && observer != nullptr)
      observer->on_connect(i, mono_ms(t));
    // The first event of a device is its first observation, not a change.
    if (e.kind != EventKind::Heartbeat || !was_up) observe(i, d, was_seen && up != was_up, t);
    evaluate(i, t, up_cause);
    reschedule(i, t);
  }

  // Heartbeat fast path (issue 16 item 4): a live heartbeat of an online device in its current
  // session (95 % of all events at a million devices) changes only the interval mean, last_seen
  // and the silence timer. Exactly what on_device() does for it, without the session verdict,
  // the flap observation, the state switch and next_deadline(): judge() accepts it, nothing
  // emits, and the only deadline of an online device is its silence (not forgettable: up).
  // Anything else (restart grace, blind, overload, a timeout that would already be due) takes
  // the general path. Returns false when it did nothing.
  bool heartbeat_fast(DeviceIndex i, DeviceRecord& d, const Event& e, std::int64_t t) {
    constexpr std::uint8_t kNeed = DeviceRecord::kUp | DeviceRecord::kSeen;
    constexpr std::uint8_t kMask = kNeed | DeviceRecord::kSessionEnded | DeviceRecord::kForgotten;
    if (e.retained || d.state != State::Online || (d.flags & kMask) != kNeed) return false;
    if (e.session != 0 && (d.session_epoch != session_epoch || e.session != d.session)) return false;
    if (in_grace || blind || overloaded) return false;
    const Config& c = cfg(d);
    if (d.has(DeviceRecord::kChain) && d.last_seen != kNever) {
      // As in on_device: a gap longer than twice the current timeout is clamped.
      const std::int64_t gap =
          std::min(t - d.last_seen, 2 * heartbeat_timeout(c, d.heartbeat_mean_ms, d.heartbeat_samples).count());
      d.heartbeat_mean_ms = heartbeat_mean_update(c, d.heartbeat_mean_ms, d.heartbeat_samples, gap);
      if (d.heartbeat_samples < 255) ++d.heartbeat_samples;
    }
    d.flags |= DeviceRecord::kChain | DeviceRecord::kHeartbeats | DeviceRecord::kConfirmed;
    d.last_seen = t;
    d.reason = DisconnectReason::Unknown;
    const std::int64_t dl = silence_deadline(d);
    if (dl <= t) {
      // A zero timeout (an unvalidated config): let evaluate() judge the silence.
      evaluate(i, t, Cause::Heartbeat);
      reschedule(i, t);
      return true;
    }
    wheel.schedule(i, dl);
    return true;
  }

  void on_retained(DeviceIndex i, DeviceRecord& d, const Event& e, std::int64_t t) {
    // A retained status restates the past: it may seed a device we know nothing about, but it is
    // never proof of life and never changes a known device. A retained "online" counts as restart
    // grace evidence unless the broker restarted (docs/core.md "Restart grace").
    if (e.kind == EventKind::Connected) {
      mark_retained(d);
    } else if (e.kind == EventKind::Disconnected && in_grace &&
               d.evidence_epoch == (grace_epoch | DeviceRecord::kRetainedEvidence)) {
      // A retained "offline" (another status topic) after a retained "online": the device is not
      // known to be up, so the grace end must not bring it back.
      d.evidence_epoch = (grace_epoch - 1) & DeviceRecord::kEpochMask;
    }
    if (d.state != State::Unknown || d.has(DeviceRecord::kSeen) ||
        e.kind == EventKind::Heartbeat) {
      ++counters.retained_events;
      return;
    }
    d.set(DeviceRecord::kSeen, true);
    d.changed_at = t;
    if (e.kind == EventKind::Connected) {
      d.set(DeviceRecord::kUp, true);
      emit(i, d, State::Online, Cause::Resync, t);
    } else {
      d.reason = e.reason;
      emit(i, d, State::Offline, Cause::Resync, t);
    }
    reschedule(i, t);
  }
};

Engine::Engine(const Config& config) : impl_(std::make_unique<Impl>(config)) {}
Engine::~Engine() = default;

DeviceIndex Engine::intern(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return kNoDevice;
  if (auto known = impl_->ids.find(id)) return *known;  // hot path: no flush
  if (id.find('\0') != std::string_view::npos) return kNoDevice;  // never known: checked once
  impl_->flush();
  return impl_->intern_new(id);
}

std::optional<DeviceIndex> Engine::find(std::string_view id) const { return impl_->ids.find(id); }
std::string_view Engine::id_of(DeviceIndex device) const { return impl_->ids.id_of(device); }
std::size_t Engine::size() const { return impl_->devices.size(); }
std::size_t Engine::device_count() const { return impl_->ids.live(); }
bool Engine::known(DeviceIndex device) const {
  impl_->flush();
  return device < impl_->devices.size() &&
         !impl_->devices[device].has(DeviceRecord::kForgotten);
}

void Engine::reserve(std::size_t devices, std::size_t id_bytes) {
  impl_->ids.reserve(devices, id_bytes);
  impl_->devices.reserve(devices);
  impl_->wheel.reserve_ids(devices);
}

void Engine::set_label(DeviceIndex device, std::string_view key, std::string_view value) {
  if (device >= impl_->devices.size() || key.empty()) return;
  // Ingest re-sends a device's labels with every birth/heartbeat: an unchanged label must cost
  // no allocation and no pipeline flush.
  if (impl_->label_pool.has(impl_->devices[device].labels, key, value)) return;
  impl_->flush();
  auto& d = impl_->devices[device];
  if (d.has(DeviceRecord::kForgotten)) return;
  LabelPool::Outcome outcome = LabelPool::Outcome::Ok;
  const std::uint32_t next = impl_->label_pool.with(d.labels, key, value, outcome);
  if (outcome != LabelPool::Outcome::Ok) {
    // Refused: the device keeps its other labels; the fleet never hears of this one.
    ++(outcome == LabelPool::Outcome::KeyRefused ? impl_->counters.label_keys_refused
                                                 : impl_->counters.label_values_refused);
    return;
  }
  if (next == d.labels) return;
  impl_->label_pool.retain(next);
  impl_->label_pool.release(d.labels);
  d.labels = next;
  if (impl_->observer != nullptr) impl_->observer->on_label(device, key, value);
}

void Engine::set_device_class(DeviceIndex device, std::uint8_t device_class) {
  auto& m = *impl_;
  if (device >= m.devices.size() || device_class >= m.classes.size()) return;
  if (m.devices[device].device_class == device_class) return;
  m.flush();
  DeviceRecord& d = m.devices[device];
  d.device_class = device_class;
  // A device interned but never judged has no clock yet: its expiry clock starts when the engine
  // next moves (start_expiry_clocks). Rescheduling it now would read its unset changed_at (0) and
  // forget it at once (found by ingest_presets_test: a new zigbee2mqtt device lost its labels).
  if (d.state == State::Unknown && !d.has(DeviceRecord::kSeen) && !m.wheel.armed(device)) return;
  // The new clock may fire earlier than the timer already set (a due deadline fires on the next
  // tick; reschedule never arms into the past).
  m.reschedule(device, m.now);
}

std::uint8_t Engine::device_class(DeviceIndex device) const {
  impl_->flush();
  return device < impl_->devices.size() ? impl_->devices[device].device_class : 0;
}

std::vector<Label> Engine::labels(DeviceIndex device) const {
  impl_->flush();
  if (device >= impl_->devices.size()) return {};
  return impl_->label_pool.labels(impl_->devices[device].labels);
}

void Engine::on_event(const Event& event) {
  auto& m = *impl_;
  // Pipelined: the event is queued and its device prefetched; the event kPipeline - 1 places
  // earlier is processed now, its device already in cache. Every other entry point flushes the
  // queue first, so callers cannot observe the delay (docs/core.md "Timers and memory").
  m.prefetch(event.device);
  m.pending[(m.pending_head + m.pending_count) % Impl::kPipeline] = event;
  if (++m.pending_count == Impl::kPipeline) m.process_oldest();
}

void Engine::on_events(const Event* events, std::size_t count) {
  for (std::size_t n = 0; n < count; ++n) on_event(events[n]);
  impl_->flush();
}

void Engine::flush() { impl_->flush(); }

void Engine::tick(MonoTime now) {
  impl_->flush();
  impl_->advance_to(to_ms(now));
  if (impl_->observer != nullptr) impl_->observer->on_tick(mono_ms(impl_->now));
}

void Engine::set_observer(DecisionObserver* observer) {
  impl_->flush();
  impl_->observer = observer;
}

void Engine::drain(std::vector<Transition>& out) {
  impl_->flush();
  auto& mine = impl_->out;
  if (out.empty()) {
    out.swap(mine);  // no copy; the two buffers ping-pong without allocating in steady state
  } else {
    out.insert(out.end(), mine.begin(), mine.end());
  }
  mine.clear();
  impl_->release_forgotten();
  // A burst (a million devices connecting at start-up, a restart grace sweep) must not pin its
  // buffer for the engine's lifetime.
  if (mine.capacity() > 65536) std::vector<Transition>().swap(mine);
}

void Engine::drain_forgotten(std::vector<std::string>& out) {
  impl_->flush();
  for (auto& id : impl_->forgotten_ids) out.push_back(std::move(id));
  impl_->forgotten_ids.clear();
  if (impl_->forgotten_ids.capacity() > 4096) std::vector<std::string>().swap(impl_->forgotten_ids);
}

void Engine::drain_alerts(std::vector<AlertIntent>& out) {
  impl_->flush();
  for (auto& a : impl_->alerts) out.push_back(std::move(a));
  impl_->alerts.clear();
  if (impl_->observer != nullptr) impl_->observer->drain_alerts(out);
}

DeviceView Engine::view(DeviceIndex device) const {
  impl_->flush();
  DeviceView v;
  if (device >= impl_->devices.size()) return v;
  const auto& d = impl_->devices[device];
  if (d.has(DeviceRecord::kForgotten)) return v;  // a hole: empty id
  v.id = impl_->ids.id_of(device);
  v.state = d.state;
  v.since = mono_ms(d.since);
  v.cause = d.cause;
  v.disconnect_reason = d.reason;
  v.last_seen = d.last_seen == kNever ? MonoTime{} : mono_ms(d.last_seen);
  v.heartbeat_mean = Duration{d.heartbeat_mean_ms};
  v.heartbeat_timeout =
      d.has(DeviceRecord::kHeartbeats) ? Duration{impl_->timeout_of(d)} : Duration{0};
  v.session = d.session;
  return v;
}

std::array<std::size_t, 5> Engine::counts() const {
  impl_->flush();
  return impl_->counts;
}
bool Engine::blind() const {
  impl_->flush();
  return impl_->blind;
}
bool Engine::in_restart_grace() const {
  impl_->flush();
  return impl_->in_grace;
}
bool Engine::overloaded() const {
  impl_->flush();
  return impl_->overloaded;
}
MonoTime Engine::now() const {
  impl_->flush();
  return mono_ms(impl_->now);
}
const Config& Engine::config() const { return impl_->config; }
EngineCounters Engine::counters() const {
  impl_->flush();
  return impl_->counters;
}

RestartGraceStatus Engine::restart_grace() const {
  impl_->flush();
  RestartGraceStatus s;
  s.active = impl_->in_grace;
  s.started = mono_ms(impl_->grace_start);
  s.ends = mono_ms(impl_->grace_deadline());
  s.known = impl_->grace_known;
  s.returned = impl_->grace_returned;
  return s;
}

std::size_t Engine::memory_bytes() const {
  return impl_->ids.bytes() + impl_->devices.bytes() +
         impl_->wheel.bytes() + impl_->label_pool.bytes();
}

std::vector<DeviceSnapshot> Engine::snapshot() const {
  impl_->flush();
  std::vector<DeviceSnapshot> out;
  out.reserve(impl_->devices.size());
  for (DeviceIndex i = 0; i < impl_->devices.size(); ++i) {
    const auto& d = impl_->devices[i];
    if (d.has(DeviceRecord::kForgotten)) continue;  // forgotten devices are not restored
    DeviceSnapshot s;
    s.id = std::string(impl_->ids.id_of(i));
    s.state = d.state;
    s.since = mono_ms(d.since);
    s.labels = impl_->label_pool.labels(d.labels);
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

// One copy_devices call: the label pool does not change during it, so a set handle maps to one
// entry of out.label_sets (a handle may name another set in a later call: not cached across).
template <typename Ids, typename Records, typename Pool, typename Next>
void copy_into(const Ids& ids, const Records& devices, const Pool& pool, std::size_t count, Next next,
               DeviceCopy& out) {
  std::unordered_map<std::uint32_t, std::uint32_t> sets;
  std::uint32_t last_handle = 0, last_set = 0;
  for (std::size_t n = 0; n < count; ++n) {
    const DeviceIndex i = next(n);
    if (out.entries.size() <= i) out.entries.resize(static_cast<std::size_t>(i) + 1);
    DeviceCopy::Entry& e = out.entries[i];
    if (i >= devices.size() || devices[i].has(DeviceRecord::kForgotten)) {
      e = DeviceCopy::Entry{};
      continue;
    }
    const DeviceRecord& d = devices[i];
    out.set_id(e, ids.id_of(i));
    e.state = d.state;
    e.since = mono_ms(d.since);
    if (d.labels == 0) {
      e.labels = 0;
    } else if (d.labels == last_handle && last_set != 0) {
      e.labels = last_set;
    } else {
      auto [it, fresh] = sets.try_emplace(d.labels, 0);
      if (fresh) {
        it->second = static_cast<std::uint32_t>(out.label_sets.size());
        out.label_sets.push_back(pool.labels(d.labels));
      }
      last_handle = d.labels;
      last_set = e.labels = it->second;
    }
  }
}

}  // namespace

void Engine::copy_devices(DeviceIndex first, DeviceIndex last, DeviceCopy& out) const {
  impl_->flush();
  if (last <= first) return;
  copy_into(impl_->ids, impl_->devices, impl_->label_pool, last - first,
            [first](std::size_t n) { return static_cast<DeviceIndex>(first + n); }, out);
}

void Engine::copy_devices(const DeviceIndex* devices, std::size_t count, DeviceCopy& out) const {
  impl_->flush();
  copy_into(impl_->ids, impl_->devices, impl_->label_pool, count,
            [devices](std::size_t n) { return devices[n]; }, out);
}

void Engine::restore(const std::vector<DeviceSnapshot>& devices, MonoTime now) {
  impl_->flush();
  auto& m = *impl_;
  const std::int64_t t = std::max(to_ms(now), m.now);
  m.advance_to(t);
  // Sized once for the whole fleet: the id table is not rehashed again and again while 1 M ids
  // are interned (issue 16 item 3: restart-to-ready).
  std::size_t id_bytes = 0;
  for (const auto& s : devices) id_bytes += s.id.size();
  reserve(m.ids.live() + devices.size(), id_bytes);
  // Devices share label sets (a fleet has hundreds, not a million): each distinct set goes
  // through set_label once, later devices take its pool handle (issue 16 item 3: set_label per
  // label per device was 1.7 s of a 1 M-device restart). The cache holds a reference of its own
  // so a handle cannot be freed and reused while it is cached.
  struct LabelsHash {
    std::size_t operator()(const std::vector<Label>& labels) const {
      std::size_t h = labels.size();
      for (const auto& [k, v] : labels)
        h = (h * 1099511628211u) ^ std::hash<std::string>{}(k) ^ (std::hash<std::string>{}(v) << 1);
      return h;
    }
  };
  std::unordered_map<std::vector<Label>, std::uint32_t, LabelsHash> sets;
  for (const auto& s : devices) {
    const DeviceIndex i = intern(s.id);
    if (i == kNoDevice) continue;
    if (!s.labels.empty()) {
      const auto cached = sets.find(s.labels);
      if (cached != sets.end() && m.devices[i].labels == 0) {
        m.devices[i].labels = cached->second;
        m.label_pool.retain(cached->second);
        if (m.observer != nullptr)
          for (const auto& [k, v] : s.labels) m.observer->on_label(i, k, v);
      } else {
        const std::uint64_t refused = m.counters.label_keys_refused + m.counters.label_values_refused;
        for (const auto& [k, v] : s.labels) set_label(i, k, v);
        const std::uint32_t handle = m.devices[i].labels;
        // Only a set taken whole is shared: a refusal is counted per device, as set_label does.
        if (cached == sets.end() && handle != 0 &&
            refused == m.counters.label_keys_refused + m.counters.label_values_refused) {
          m.label_pool.retain(handle);
          sets.emplace(s.labels, handle);
        }
      }
    }
    auto& d = m.devices[i];
    if (s.state == State::Unknown || s.state == d.state) continue;
    --m.counts[static_cast<std::size_t>(d.state)];
    ++m.counts[static_cast<std::size_t>(s.state)];
    d.state = s.state;
    d.since = to_ms(s.since);
    d.cause = Cause::Resync;
    d.changed_at = to_ms(s.since);
    d.flap_clock = t;
    d.set(DeviceRecord::kUp, s.state == State::Online);
    d.set(DeviceRecord::kSeen, true);
    // A snapshot does not say how many messages an id sent; a restored device is treated as a
    // device (forget_after), not as a one-off id.
    d.set(DeviceRecord::kConfirmed, true);
  }
  for (const auto& [labels, handle] : sets) m.label_pool.release(handle);
  // Restored state needs fresh evidence like after any restart (issue 3).
  m.start_grace(t);
}

}  // namespace presence::core
