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
#include <string>
#include <string_view>
#include <vector>

#include "presence/core/engine.h"
#include "presence/core/time.h"
#include "presence/store/log.h"

namespace presence::store {

inline constexpr std::uint32_t kSnapshotVersion = 1;

// Steady time does not survive a restart, so snapshots hold wall-clock milliseconds. An anchor
// pairs one reading of both clocks (taken together, once) to convert between them.
struct WallAnchor {
  std::chrono::system_clock::time_point wall;
  core::MonoTime mono;

  std::int64_t to_wall_ms(core::MonoTime t) const;
  core::MonoTime to_mono(std::int64_t wall_ms) const;
};

struct Snapshot {
  std::vector<core::DeviceSnapshot> devices;  // times converted back with the load anchor
  std::string incidents;                      // opaque blob owned by the fleet code
  std::int64_t saved_at_ms = 0;               // wall clock, ms since the Unix epoch
};

enum class LoadStatus { Ok, Missing, Corrupt, UnsupportedVersion, IoError };
const char* to_string(LoadStatus);

struct LoadResult {
  LoadStatus status = LoadStatus::Missing;
  Snapshot snapshot;  // empty unless status == Ok
  std::string error;
};

// Pure encoding, for tests and tools.
std::string encode_snapshot(const std::vector<core::DeviceSnapshot>& devices,
                            std::string_view incidents, const WallAnchor& anchor);
LoadResult decode_snapshot(std::string_view file, const WallAnchor& anchor);

struct SnapshotStats {
  std::uint64_t saves = 0;
  std::uint64_t save_failures = 0;
  std::uint64_t loads = 0;
  std::uint64_t load_missing = 0;
  std::uint64_t load_corrupt = 0;  // includes unsupported versions and read errors
  std::uint64_t last_bytes = 0;
};

// Thread-safe for save() from one thread while stats() is read from another.
class SnapshotStore {
 public:
  explicit SnapshotStore(std::string path, LogFn log = {});

  bool save(const std::vector<core::DeviceSnapshot>& devices, std::string_view incidents,
            const WallAnchor& anchor);
  LoadResult load(const WallAnchor& anchor);
  SnapshotStats stats() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  LogFn log_;
  std::atomic<std::uint64_t> saves_{0}, save_failures_{0}, loads_{0}, load_missing_{0},
      load_corrupt_{0}, last_bytes_{0};
};

}  // namespace presence::store
