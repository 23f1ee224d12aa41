#include "presence/core/snapshot_slicer.h"

#include <algorithm>
#include <utility>

namespace presence::core {

std::size_t DeviceCopy::devices() const {
  std::size_t n = 0;
  for (const auto& e : entries) n += e.id_size != 0;
  return n;
}

std::vector<DeviceSnapshot> DeviceCopy::to_snapshots() const {
  std::vector<DeviceSnapshot> out;
  out.reserve(entries.size());
  for (const auto& e : entries) {
    if (e.id_size == 0) continue;
    DeviceSnapshot s;
    s.id = std::string(id(e));
    s.state = e.state;
    s.since = e.since;
    s.labels = label_sets[e.labels];
    out.push_back(std::move(s));
  }
  return out;
}

void SnapshotSlicer::begin() {
  abandon();
  active_ = true;
}

void SnapshotSlicer::abandon() {
  active_ = false;
  copy_ = DeviceCopy{};
  cursor_ = 0;
  changed_.clear();
  queued_.clear();
  steps_ = steps_past_end_ = copied_ = recopied_ = 0;
}

bool SnapshotSlicer::step(Engine& engine, std::size_t max_devices) {
  if (!active_) return false;
  // Events still in the engine's pipeline first: their changes reach on_transition (and the
  // queue) before this step decides what is left.
  engine.flush();
  ++steps_;
  std::size_t budget = std::max<std::size_t>(max_devices, 1);
  const std::size_t size = engine.size();
  if (cursor_ < size) {
    const std::size_t n = std::min(budget, size - cursor_);
    // Room for the fleet and some growth: a reallocation would copy every entry in one slice.
    if (copy_.entries.capacity() < size) copy_.entries.reserve(size + size / 8);
    engine.copy_devices(cursor_, static_cast<DeviceIndex>(cursor_ + n), copy_);
    cursor_ = static_cast<DeviceIndex>(cursor_ + n);
    budget -= n;
    copied_ += n;
  }
  if (cursor_ >= size) {
    // Changes may outpace the budget (a fleet-wide outage during the copy): after a few steps
    // the rest is copied at once rather than never finishing.
    if (++steps_past_end_ > static_cast<std::size_t>(kCatchUpSteps)) budget = changed_.size();
    const std::size_t n = std::min(budget, changed_.size());
    if (n > 0) {
      const DeviceIndex* first = changed_.data() + (changed_.size() - n);
      engine.copy_devices(first, n, copy_);
      for (std::size_t k = 0; k < n; ++k) queued_[first[k]] = 0;
      changed_.resize(changed_.size() - n);
      copied_ += n;
      recopied_ += n;
    }
  }
  return cursor_ >= engine.size() && changed_.empty();
}

DeviceCopy SnapshotSlicer::take() {
  DeviceCopy out = std::move(copy_);
  // Indices past the engine's end (a forgotten tail given back) are holes already: trimmed.
  while (!out.entries.empty() && out.entries.back().id_size == 0) out.entries.pop_back();
  const std::size_t steps = steps_, copied = copied_, recopied = recopied_;
  abandon();
  steps_ = steps;
  copied_ = copied;
  recopied_ = recopied;
  return out;
}

void SnapshotSlicer::changed(DeviceIndex device) {
  // Not copied yet: its slice will read the new value.
  if (!active_ || device >= cursor_) return;
  if (queued_.size() <= device) queued_.resize(std::max<std::size_t>(cursor_, device + 1), 0);
  if (queued_[device] != 0) return;
  queued_[device] = 1;
  changed_.push_back(device);
}

void SnapshotSlicer::on_transition(const Transition& t) {
  changed(t.device);
  if (inner_) inner_->on_transition(t);
}
void SnapshotSlicer::on_connect(DeviceIndex device, MonoTime at) {
  if (inner_) inner_->on_connect(device, at);
}
void SnapshotSlicer::on_label(DeviceIndex device, std::string_view key, std::string_view value) {
  changed(device);
  if (inner_) inner_->on_label(device, key, value);
}
void SnapshotSlicer::on_blind(bool blind, MonoTime at) {
  if (inner_) inner_->on_blind(blind, at);
}
void SnapshotSlicer::on_restart_grace(bool active, MonoTime at) {
  if (inner_) inner_->on_restart_grace(active, at);
}
void SnapshotSlicer::on_overload(bool overloaded, MonoTime at) {
  if (inner_) inner_->on_overload(overloaded, at);
}
void SnapshotSlicer::on_tick(MonoTime now) {
  if (inner_) inner_->on_tick(now);
}
void SnapshotSlicer::drain_alerts(std::vector<AlertIntent>& out) {
  if (inner_) inner_->drain_alerts(out);
}
bool SnapshotSlicer::may_forget(DeviceIndex device) const {
  return inner_ ? inner_->may_forget(device) : true;
}
void SnapshotSlicer::on_forget(DeviceIndex device) {
  changed(device);
  if (inner_) inner_->on_forget(device);
}

}  // namespace presence::core
