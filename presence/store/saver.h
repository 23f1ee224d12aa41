// The snapshot saver thread (issue 12 step 2, moved out of presence/app/alerting): the engine
// thread copies the state (in slices, core/snapshot_slicer.h; its longest pause is
// presence_snapshot_pause_seconds) and hands the finished copy over; this thread encodes and
// writes it (fsync) so the engine never waits for the disk. The latest copy wins.
//
// Order with the outbox (issue 19 item 7): before each write, before_write (on this thread) waits
// for the outbox to be durable and names the outbox seq the copy reflects; after a successful
// write, after_write lets the outbox forget what the snapshot now holds. A crash in between can
// only repeat a decision (dedup_key makes that harmless), never forget one that was sent.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "presence/store/snapshot.h"

namespace presence::store {

class SnapshotSaver {
 public:
  struct Copy {
    std::uint64_t token = 0;  // handed back to before_write (the dispatcher's submitted count)
    core::DeviceCopy devices;
    std::string incidents;
    // When set, called on the saver thread for `incidents`, with `devices` (the alert policy's
    // text: 25 ms for 100 k held devices, too long for the engine thread; its copy is taken
    // there, with ids as DeviceCopy::index_token, resolved here from the devices).
    std::function<std::string(const core::DeviceCopy& devices)> render_incidents;
    WallAnchor anchor;
  };
  // Both optional; both run on the saver thread.
  struct Hooks {
    std::function<std::uint64_t(std::uint64_t token)> before_write;  // -> outbox seq (0: none)
    std::function<void(std::uint64_t outbox_seq)> after_write;      // the write succeeded
  };

  SnapshotSaver(SnapshotStore& store, Hooks hooks);
  ~SnapshotSaver();
  SnapshotSaver(const SnapshotSaver&) = delete;
  SnapshotSaver& operator=(const SnapshotSaver&) = delete;

  void start();
  // Any thread (the engine's): replaces a copy not written yet; never waits for the disk.
  void hand_over(Copy copy);
  // Bounded: waits up to `wait` for the copy handed over last (SIGTERM's final snapshot) to be
  // written, then stops the thread. A write under way is finished, not abandoned.
  void stop(std::chrono::milliseconds wait = std::chrono::seconds(10));
  // True once nothing is pending or being written (tests).
  bool idle() const;

 private:
  void run();

  SnapshotStore& store_;
  Hooks hooks_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Copy> pending_;
  bool saving_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace presence::store
