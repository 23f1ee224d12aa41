#include "presence/ingest/output.h"
#include "presence/common/iso8601.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <functional>

#include <nlohmann/json.hpp>

#include "presence/core/words.h"

namespace presence::ingest {

using nlohmann::json;

std::string iso8601(std::chrono::system_clock::time_point t) { return common::iso8601_utc_ms(t); }

std::string device_json(const core::DeviceView& view, const std::vector<core::Label>& labels,
                        const WallAnchor& anchor, const std::string& down_ancestor) {
  json j;
  j["v"] = 1;
  j["device"] = std::string(view.id);
  const char* shown = core::shown_state_word(view.state, down_ancestor);
  j["state"] = shown;
  // Only with "unreachable": the device whose failure this is (the one page names it).
  if (std::string_view(shown) == core::kUnreachableWord) j["parent"] = down_ancestor;
  j["since"] = iso8601(anchor.to_wall(view.since));
  j["reason"] = core::to_string(view.cause);
  if (view.cause == core::Cause::Disconnected)
    j["disconnect_reason"] = core::to_string(view.disconnect_reason);
  json l = json::object();
  for (const auto& [k, v] : labels) l[k] = v;
  j["labels"] = std::move(l);
  // Invalid UTF-8 in ids or labels must not throw at publish time: replace it.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string fleet_json(const FleetStatus& fleet, std::chrono::system_clock::time_point now) {
  json j;
  j["v"] = 1;
  j["devices"] = fleet.devices;
  json counts = json::object();
  for (std::size_t i = 0; i < fleet.counts.size(); ++i)
    counts[core::to_string(static_cast<core::State>(i))] = fleet.counts[i];
  j["counts"] = std::move(counts);
  j["broker_connected"] = fleet.broker_connected;
  j["blind"] = fleet.blind;
  j["restart_grace"] = fleet.restart_grace;
  j["incidents_open"] = fleet.incidents_open;
  j["ts"] = iso8601(now);
  return j.dump();
}

PublishQueue::PublishQueue(double max_per_second, core::Duration coalesce_interval)
    : rate_(max_per_second), tokens_(max_per_second), interval_(coalesce_interval) {}

void PublishQueue::set_rate(double max_per_second) {
  rate_ = max_per_second;
  if (rate_ > 0) tokens_ = std::min(tokens_, rate_);
}

void PublishQueue::ensure(core::DeviceIndex device) {
  if (device >= queued_.size()) {
    const std::size_t n = static_cast<std::size_t>(device) + 1;
    queued_.resize(n, 0);
    last_sent_.resize(n);
    ever_sent_.resize(n, 0);
  }
}

void PublishQueue::mark(core::DeviceIndex device, core::MonoTime now, bool background) {
  ensure(device);
  auto& q = queued_[device];
  if (q == kBackground && !background) {
    // A real change of a device waiting in the background: it moves up (its entry in
    // background_ is skipped when reached).
    q = kReady;
    --background_pending_;
    ready_.push_back(device);
    return;
  }
  if (q != kNone) return;  // coalesced: the payload is built at send time
  ++pending_;
  if (ever_sent_[device] && now < last_sent_[device] + interval_) {
    q = kHeld;
    held_.push_back({last_sent_[device] + interval_, device});
    std::push_heap(held_.begin(), held_.end(), std::greater<>());
  } else if (background) {
    q = kBackground;
    ++background_pending_;
    background_.push_back(device);
  } else {
    q = kReady;
    ready_.push_back(device);
  }
}

void PublishQueue::sent(core::DeviceIndex d, core::MonoTime now,
                        std::vector<core::DeviceIndex>& out) {
  if (queued_[d] == kBackground) --background_pending_;
  queued_[d] = kNone;
  --pending_;
  last_sent_[d] = now;
  ever_sent_[d] = 1;
  out.push_back(d);
  if (rate_ > 0) tokens_ -= 1.0;
}

void PublishQueue::take(core::MonoTime now, bool& fleet, std::vector<core::DeviceIndex>& devices) {
  fleet = false;
  while (!held_.empty() && held_.front().due <= now) {
    std::pop_heap(held_.begin(), held_.end(), std::greater<>());
    queued_[held_.back().device] = kReady;
    ready_.push_back(held_.back().device);
    held_.pop_back();
  }
  const bool unlimited = rate_ <= 0;
  if (!unlimited) {
    if (!started_) {
      started_ = true;
      last_ = now;
    } else if (now > last_) {
      const double elapsed = std::chrono::duration<double>(now - last_).count();
      tokens_ = std::min(rate_, tokens_ + elapsed * rate_);
      last_ = now;
    }
  }
  if (fleet_dirty_ && (unlimited || tokens_ >= 1.0)) {
    fleet = true;
    fleet_dirty_ = false;
    if (!unlimited) tokens_ -= 1.0;
  }
  while (!ready_.empty() && (unlimited || tokens_ >= 1.0)) {
    const core::DeviceIndex d = ready_.front();
    ready_.pop_front();
    sent(d, now, devices);
  }
  while (!background_.empty() && (unlimited || tokens_ >= 1.0)) {
    const core::DeviceIndex d = background_.front();
    background_.pop_front();
    if (queued_[d] != kBackground) continue;  // moved up, or sent already
    sent(d, now, devices);
  }
}

void PublishQueue::put_back(bool fleet, const std::vector<core::DeviceIndex>& devices) {
  if (fleet) fleet_dirty_ = true;
  for (auto it = devices.rbegin(); it != devices.rend(); ++it) {
    const core::DeviceIndex d = *it;
    ensure(d);
    if (queued_[d] != kNone) continue;
    queued_[d] = kReady;
    ++pending_;
    ever_sent_[d] = 0;  // it was not sent after all
    ready_.push_front(d);
  }
}

void PublishQueue::take_all(bool& fleet, std::vector<core::DeviceIndex>& devices,
                            bool background) {
  fleet = fleet_dirty_;
  fleet_dirty_ = false;
  for (const auto d : ready_) {
    if (queued_[d] != kReady) continue;
    queued_[d] = kNone;
    devices.push_back(d);
  }
  ready_.clear();
  std::sort(held_.begin(), held_.end(), [](const Held& a, const Held& b) { return a.due < b.due; });
  for (const auto& h : held_) {
    queued_[h.device] = kNone;
    devices.push_back(h.device);
  }
  held_.clear();
  if (!background) {
    pending_ = background_pending_;
    return;
  }
  for (const auto d : background_) {
    if (queued_[d] != kBackground) continue;
    queued_[d] = kNone;
    devices.push_back(d);
  }
  background_.clear();
  pending_ = 0;
  background_pending_ = 0;
}

}  // namespace presence::ingest
