// Snapshot of device state and open incidents (issue 5, "Durability"). Written with
// write_file_atomic (temp file, fsync, rename, fsync dir); the file is
//
//   magic "PRSNAPSH" | version u32 | one checksummed record (presence/store/record.h)
//
// A missing, corrupt or newer-version snapshot is logged and counted and the service starts empty:
// never a crash loop (incident 004). A corrupt file is kept aside as <path>.corrupt for forensics.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "presence/core/engine.h"
#include "presence/core/snapshot_slicer.h"
#include "presence/core/time.h"
#include "presence/common/log.h"

namespace presence::store {

// 2 adds outbox_seq; version 1 files are still read (outbox_seq 0: nothing to replay).
inline constexpr std::uint32_t kSnapshotVersion = 2;
// The whole fleet is one record. The outbox's 64 MiB bound (kMaxRecordPayload) is ~40 B of labels
// per device at 1 M devices: a labelled 1 M fleet wrote snapshots it could not read back and
// restarted empty (issue 16 item 3). 1 GiB holds 1 M devices with ~1 KB of labels each; a
// bigger snapshot is refused at save (counted, logged, presence/self/persistence), never written.
inline constexpr std::uint32_t kMaxSnapshotPayload = 1u << 30;

// What a restored device may hold: the same bounds as a live message (issue 19 item 10: a
// crafted snapshot restored a 1 MiB id). The app passes ingest::ParseLimits' values.
struct DeviceLimits {
  std::size_t max_id_bytes = 256;
  std::size_t max_labels = 32;
  std::size_t max_label_key_bytes = 64;
  std::size_t max_label_value_bytes = 256;
};

// What decode dropped or clamped from a snapshot that otherwise parsed (counted, logged once).
struct LoadRepairs {
  std::uint64_t devices_dropped = 0;  // empty, over-long or duplicate id
  std::uint64_t labels_dropped = 0;   // over-long key/value, or over max_labels
  std::uint64_t times_clamped = 0;    // `since` before 2000 or after the file was written
  bool any() const { return devices_dropped + labels_dropped + times_clamped > 0; }
};

// Steady time does not survive a restart, so snapshots hold wall-clock milliseconds, converted
// with an anchor (one definition: core/time.h).
using WallAnchor = core::WallAnchor;

struct Snapshot {
  std::vector<core::DeviceSnapshot> devices;  // times converted back with the load anchor
  std::string incidents;                      // opaque blob owned by the fleet code
  std::int64_t saved_at_ms = 0;               // wall clock, ms since the Unix epoch
  // Every outbox entry with seq below this was decided before the copy (issue 19 item 7: the
  // app replays the newer ones over the snapshot). 0 = unknown.
  std::uint64_t outbox_seq = 0;
};

enum class LoadStatus { Ok, Missing, Corrupt, UnsupportedVersion, IoError };
const char* to_string(LoadStatus);

struct LoadResult {
  LoadStatus status = LoadStatus::Missing;
  Snapshot snapshot;  // empty unless status == Ok
  std::string error;
  LoadRepairs repairs;
};

// Pure encoding, for tests and tools.
std::string encode_snapshot(const std::vector<core::DeviceSnapshot>& devices,
                            std::string_view incidents, const WallAnchor& anchor,
                            std::uint64_t outbox_seq = 0);
// The same file from a sliced copy (core/snapshot_slicer.h): holes are left out.
std::string encode_copy(const core::DeviceCopy& devices, std::string_view incidents,
                            const WallAnchor& anchor, std::uint64_t outbox_seq = 0);
// Validates as ingest does: devices over the limits are dropped, times clamped (LoadRepairs).
LoadResult decode_snapshot(std::string_view file, const WallAnchor& anchor,
                           const DeviceLimits& limits = {});

struct SnapshotStats {
  std::uint64_t saves = 0;
  std::uint64_t save_failures = 0;
  std::uint64_t loads = 0;
  std::uint64_t load_missing = 0;
  std::uint64_t load_corrupt = 0;  // includes unsupported versions and read errors
  std::uint64_t last_bytes = 0;
  std::int64_t last_write_us = 0;   // the last successful save: encode, write, fsync, rename
  std::uint64_t load_repaired = 0;  // devices/labels dropped or times clamped at load
};

// Thread-safe for save() from one thread while stats() is read from another.
class SnapshotStore {
 public:
  explicit SnapshotStore(std::string path, common::LogFn log = {});

  // Failures are counted; the first of a run is logged, then at most one line per minute, and
  // the first success after a failure says so (issue 19 item 6: a full disk logged every second).
  bool save(const std::vector<core::DeviceSnapshot>& devices, std::string_view incidents,
            const WallAnchor& anchor, std::uint64_t outbox_seq = 0);
  bool save_copy(const core::DeviceCopy& devices, std::string_view incidents, const WallAnchor& anchor,
            std::uint64_t outbox_seq = 0);
  LoadResult load(const WallAnchor& anchor, const DeviceLimits& limits = {});
  // True while the last save failed (for /readyz and the self-page).
  bool failing() const { return failing_.load(); }
  std::string last_error() const;
  SnapshotStats stats() const;
  const std::string& path() const { return path_; }

 private:
  // Writes an encoded file; t0: when its encoding began (the save's time, last_write_us).
  bool write(const std::string& file, std::chrono::steady_clock::time_point t0);

  std::string path_;
  common::LogFn log_;
  std::atomic<std::uint64_t> saves_{0}, save_failures_{0}, loads_{0}, load_missing_{0},
      load_corrupt_{0}, last_bytes_{0}, load_repaired_{0};
  std::atomic<std::int64_t> last_write_us_{0};
  std::atomic<bool> failing_{false};
  mutable std::mutex error_mu_;
  std::string last_error_;
  common::LogLimiter fail_log_;  // save() is called from one thread
};

}  // namespace presence::store
