#include "presence/store/saver.h"

#include <utility>

namespace presence::store {

SnapshotSaver::SnapshotSaver(SnapshotStore& store, Hooks hooks)
    : store_(store), hooks_(std::move(hooks)) {}

SnapshotSaver::~SnapshotSaver() { stop(std::chrono::milliseconds(0)); }

void SnapshotSaver::start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] { run(); });
}

void SnapshotSaver::hand_over(Copy copy) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = std::move(copy);
  }
  cv_.notify_all();
}

void SnapshotSaver::stop(std::chrono::milliseconds wait) {
  if (!thread_.joinable()) return;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, wait, [&] { return !pending_ && !saving_; });
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool SnapshotSaver::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !pending_ && !saving_;
}

void SnapshotSaver::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return pending_.has_value() || stop_; });
    if (!pending_) return;
    Copy c = std::move(*pending_);
    pending_.reset();
    saving_ = true;
    lock.unlock();
    // The outbox first, then the snapshot (see the header): the snapshot records the outbox seq
    // it reflects, so a crash before the next one replays the newer outbox entries over it.
    if (c.render_incidents) c.incidents = c.render_incidents(c.devices);
    const std::uint64_t outbox_seq = hooks_.before_write ? hooks_.before_write(c.token) : 0;
    if (store_.save_copy(c.devices, c.incidents, c.anchor, outbox_seq) && hooks_.after_write)
      hooks_.after_write(outbox_seq);
    lock.lock();
    saving_ = false;
    cv_.notify_all();
  }
}

}  // namespace presence::store
