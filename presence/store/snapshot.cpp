#include "presence/store/snapshot.h"

#include <cstdio>
#include <cstring>
#include <algorithm>
#include <functional>
#include <utility>

#include "presence/store/codec.h"
#include "presence/store/file_io.h"
#include "presence/store/record.h"

namespace presence::store {
namespace {

constexpr std::string_view kMagic{"PRSNAPSH", 8};
constexpr std::size_t kHeaderSize = 12;
constexpr std::uint8_t kMaxState = static_cast<std::uint8_t>(core::State::Flapping);

// Keeps the first device of each id, in file order; returns how many were dropped. Sorting
// (hash, position) pairs instead of inserting every id into an unordered_set<std::string>: at 1 M
// devices the set (a node and a string copy per id) was ~1 s of a ~1.5 s restart (issue 16 item 3,
// perf of presenced's start-up on a 1 M-device snapshot); the sort is ~0.1 s.
std::uint64_t drop_duplicate_ids(std::vector<core::DeviceSnapshot>& devices) {
  std::vector<std::pair<std::size_t, std::uint32_t>> keys;
  keys.reserve(devices.size());
  const std::hash<std::string_view> hash;
  for (std::size_t i = 0; i < devices.size(); ++i)
    keys.emplace_back(hash(devices[i].id), static_cast<std::uint32_t>(i));
  std::sort(keys.begin(), keys.end());  // equal hashes: by position, so the first stays first
  std::vector<bool> dup(devices.size(), false);
  std::uint64_t dropped = 0;
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t end = i + 1;
    while (end < keys.size() && keys[end].first == keys[i].first) ++end;
    // A run of equal hashes (almost always one): each id against the earlier kept ones.
    for (std::size_t a = i + 1; a < end; ++a)
      for (std::size_t b = i; b < a; ++b)
        if (!dup[keys[b].second] && devices[keys[a].second].id == devices[keys[b].second].id) {
          dup[keys[a].second] = true;
          ++dropped;
          break;
        }
    i = end;
  }
  if (dropped == 0) return 0;
  std::size_t out = 0;
  for (std::size_t i = 0; i < devices.size(); ++i)
    if (!dup[i]) {
      if (out != i) devices[out] = std::move(devices[i]);
      ++out;
    }
  devices.resize(out);
  return dropped;
}

LoadResult corrupt(std::string why) {
  LoadResult r;
  r.status = LoadStatus::Corrupt;
  r.error = std::move(why);
  return r;
}

}  // namespace

const char* to_string(LoadStatus s) {
  switch (s) {
    case LoadStatus::Ok:
      return "ok";
    case LoadStatus::Missing:
      return "missing";
    case LoadStatus::Corrupt:
      return "corrupt";
    case LoadStatus::UnsupportedVersion:
      return "unsupported_version";
    case LoadStatus::IoError:
      return "io_error";
  }
  return "unknown";
}

namespace {

// The one writer of the format, for both shapes of copy (the file is the same byte for byte):
// for_each(put) calls put(id, state, since, labels) for every device, in order; it runs twice,
// once to size the file exactly, once to write it.
template <typename ForEach>
std::string encode(std::size_t count, const ForEach& for_each, std::string_view incidents,
                   const WallAnchor& anchor, std::uint64_t outbox_seq) {
  // Sized exactly and framed in place (issue 16 item 3): at 1 M devices the payload was built in a
  // doubling string and then copied into the file, ~3x the file's 28 MB held on the saver thread.
  std::size_t bytes = kHeaderSize + kRecordHeaderSize + 8 + 4 + 4 + incidents.size() + 8;
  for_each([&](std::string_view id, core::State, core::MonoTime,
               const std::vector<core::Label>& labels) {
    bytes += 4 + id.size() + 1 + 8 + 4;
    for (const auto& [k, v] : labels) bytes += 8 + k.size() + v.size();
  });
  Writer w;
  w.reserve(bytes);
  w.raw(kMagic);
  w.u32(kSnapshotVersion);
  const std::size_t record = reserve_record(w.buffer());
  w.i64(std::chrono::duration_cast<std::chrono::milliseconds>(anchor.wall.time_since_epoch())
            .count());
  w.u32(static_cast<std::uint32_t>(count));
  for_each([&](std::string_view id, core::State state, core::MonoTime since,
               const std::vector<core::Label>& labels) {
    w.str(id);
    w.u8(static_cast<std::uint8_t>(state));
    w.i64(anchor.to_wall_ms(since));
    w.u32(static_cast<std::uint32_t>(labels.size()));
    for (const auto& [k, v] : labels) {
      w.str(k);
      w.str(v);
    }
  });
  w.str(incidents);
  w.u64(outbox_seq);
  seal_record(w.buffer(), record);
  return w.take();
}

}  // namespace

std::string encode_snapshot(const std::vector<core::DeviceSnapshot>& devices,
                            std::string_view incidents, const WallAnchor& anchor,
                            std::uint64_t outbox_seq) {
  return encode(
      devices.size(),
      [&](const auto& put) {
        for (const auto& d : devices) put(d.id, d.state, d.since, d.labels);
      },
      incidents, anchor, outbox_seq);
}

std::string encode_copy(const core::DeviceCopy& devices, std::string_view incidents,
                        const WallAnchor& anchor, std::uint64_t outbox_seq) {
  std::size_t count = 0;
  for (const auto& e : devices.entries) count += e.id_size != 0;
  return encode(
      count,
      [&](const auto& put) {
        for (const auto& e : devices.entries)
          if (e.id_size != 0) put(devices.id(e), e.state, e.since, devices.label_sets[e.labels]);
      },
      incidents, anchor, outbox_seq);
}

LoadResult decode_snapshot(std::string_view file, const WallAnchor& anchor,
                           const DeviceLimits& limits) {
  if (file.size() < kHeaderSize || file.substr(0, kMagic.size()) != kMagic) {
    return corrupt("bad magic (not a presenced snapshot)");
  }
  Reader header(file.substr(kMagic.size(), 4));
  const std::uint32_t version = header.u32();
  if (version != kSnapshotVersion && version != 1) {
    LoadResult r;
    r.status = LoadStatus::UnsupportedVersion;
    r.error = "snapshot version " + std::to_string(version) + ", this build reads " +
              std::to_string(kSnapshotVersion);
    return r;
  }
  std::string_view payload;
  std::size_t found = 0;
  const ScanStats scan = scan_records(
      file.substr(kHeaderSize),
      [&](std::string_view p) {
        payload = p;
        ++found;
      },
      kMaxSnapshotPayload);
  if (found != 1 || !scan.clean()) {
    return corrupt(scan.truncated_tail ? "truncated snapshot" : "snapshot checksum mismatch");
  }

  LoadResult r;
  Reader in(payload);
  r.snapshot.saved_at_ms = in.i64();
  // A state's `since` lies between 2000-01-01 and the moment the file was written (no later than
  // now); anything else is crafted or damaged and would overflow the time arithmetic downstream
  // (issue 19 item 10, UBSan in snapshot.cpp/output.cpp/api.cpp): clamped to now, counted.
  constexpr std::int64_t kMinWallMs = 946684800000;  // 2000-01-01T00:00:00Z
  const std::int64_t now_wall_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(anchor.wall.time_since_epoch()).count();
  // Smallest device: id length (4) + state (1) + since (8) + label count (4).
  const std::uint32_t n = in.count(17);
  r.snapshot.devices.reserve(n);
  for (std::uint32_t i = 0; i < n && in.ok(); ++i) {
    core::DeviceSnapshot d;
    d.id = in.str();
    const std::uint8_t state = in.u8();
    if (state > kMaxState) return corrupt("unknown device state " + std::to_string(state));
    d.state = static_cast<core::State>(state);
    std::int64_t since_wall = in.i64();
    if (since_wall < kMinWallMs || since_wall > now_wall_ms) {
      since_wall = now_wall_ms;
      ++r.repairs.times_clamped;
    }
    d.since = anchor.to_mono(since_wall);
    const std::uint32_t labels = in.count(8);
    for (std::uint32_t j = 0; j < labels && in.ok(); ++j) {
      std::string k = in.str();
      std::string v = in.str();
      if (k.empty() || k.size() > limits.max_label_key_bytes ||
          v.size() > limits.max_label_value_bytes || d.labels.size() >= limits.max_labels) {
        ++r.repairs.labels_dropped;
        continue;
      }
      d.labels.emplace_back(std::move(k), std::move(v));
    }
    if (d.id.empty() || d.id.size() > limits.max_id_bytes) {
      ++r.repairs.devices_dropped;
      continue;
    }
    r.snapshot.devices.push_back(std::move(d));
  }
  r.snapshot.incidents = in.str();
  if (version >= 2) r.snapshot.outbox_seq = in.u64();
  if (!in.ok() || !in.at_end()) return corrupt("snapshot payload does not parse");
  // A duplicate id would restore one device twice (the second state wins silently): dropped.
  r.repairs.devices_dropped += drop_duplicate_ids(r.snapshot.devices);
  r.status = LoadStatus::Ok;
  return r;
}

SnapshotStore::SnapshotStore(std::string path, common::LogFn log)
    : path_(std::move(path)), log_(common::or_stderr(std::move(log))) {}

bool SnapshotStore::save(const std::vector<core::DeviceSnapshot>& devices,
                         std::string_view incidents, const WallAnchor& anchor,
                         std::uint64_t outbox_seq) {
  const auto t0 = std::chrono::steady_clock::now();
  return write(encode_snapshot(devices, incidents, anchor, outbox_seq), t0);
}

bool SnapshotStore::save_copy(const core::DeviceCopy& devices, std::string_view incidents,
                              const WallAnchor& anchor, std::uint64_t outbox_seq) {
  const auto t0 = std::chrono::steady_clock::now();
  return write(encode_copy(devices, incidents, anchor, outbox_seq), t0);
}

bool SnapshotStore::write(const std::string& file, std::chrono::steady_clock::time_point t0) {
  std::string error;
  const bool too_big = file.size() > kHeaderSize + kRecordHeaderSize + kMaxSnapshotPayload;
  if (too_big)
    error = "snapshot of " + std::to_string(file.size()) + " bytes is over the " +
            std::to_string(kMaxSnapshotPayload >> 20) + " MiB a snapshot may hold (labels)";
  bool failed = too_big;
  if (!too_big) {
    auto written = write_file_atomic(path_, file);
    failed = !written.ok();
    if (failed) error = std::move(written.error);
  }
  if (failed) {
    ++save_failures_;
    {
      std::lock_guard lock(error_mu_);
      last_error_ = error;
    }
    // Once when it starts failing, then at most once a minute with the count (a save is tried
    // every second while alerts change: a full disk used to log every one).
    const bool first = !failing_.exchange(true);
    if (first || fail_log_.allow()) {
      if (first) fail_log_.allow();  // the minute starts now
      log_("snapshot: cannot save " + path_ + ": " + error +
           "; state since the last good snapshot would be lost by a crash (" +
           std::to_string(save_failures_.load()) + " failed save(s) so far, retrying)");
    }
    return false;
  }
  ++saves_;
  last_bytes_ = file.size();
  last_write_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::steady_clock::now() - t0)
                       .count();
  if (failing_.exchange(false)) {
    log_("snapshot: saving again to " + path_ + " after " + std::to_string(save_failures_.load()) +
         " failed save(s)");
  }
  return true;
}

std::string SnapshotStore::last_error() const {
  std::lock_guard lock(error_mu_);
  return last_error_;
}

LoadResult SnapshotStore::load(const WallAnchor& anchor, const DeviceLimits& limits) {
  ++loads_;
  auto read = read_file(path_);
  if (read.ok() && !read.value) {
    ++load_missing_;
    log_("snapshot: " + path_ + " missing, starting empty");
    LoadResult r;
    r.status = LoadStatus::Missing;
    return r;
  }
  if (!read.ok()) {
    ++load_corrupt_;
    log_("snapshot: cannot read, starting empty: " + read.error);
    LoadResult r;
    r.status = LoadStatus::IoError;
    r.error = read.error;
    return r;
  }
  LoadResult r = decode_snapshot(*read.value, anchor, limits);
  if (r.status == LoadStatus::Ok && r.repairs.any()) {
    load_repaired_ += r.repairs.devices_dropped + r.repairs.labels_dropped + r.repairs.times_clamped;
    log_("snapshot: " + path_ + " held invalid data, repaired: " +
         std::to_string(r.repairs.devices_dropped) + " device(s) dropped (empty, over-long or " +
         "duplicate id), " + std::to_string(r.repairs.labels_dropped) +
         " label(s) dropped (over the ingest limits), " + std::to_string(r.repairs.times_clamped) +
         " time(s) out of range clamped to now");
  }
  if (r.status != LoadStatus::Ok) {
    ++load_corrupt_;
    const std::string aside = path_ + ".corrupt";
    // Keep the evidence, and make sure the next save does not trip over it again.
    const bool moved = std::rename(path_.c_str(), aside.c_str()) == 0;
    log_("snapshot: " + path_ + " " + to_string(r.status) + " (" + r.error + "), starting empty" +
         (moved ? "; kept as " + aside : ""));
    r.snapshot = {};
  }
  return r;
}

SnapshotStats SnapshotStore::stats() const {
  SnapshotStats s;
  s.saves = saves_;
  s.save_failures = save_failures_;
  s.loads = loads_;
  s.load_missing = load_missing_;
  s.load_corrupt = load_corrupt_;
  s.last_bytes = last_bytes_;
  s.last_write_us = last_write_us_;
  s.load_repaired = load_repaired_;
  return s;
}

}  // namespace presence::store
