// Sliced snapshots (issue 16 item 3: no engine pause over 10 ms at 1 M devices). Copying the
// whole fleet at once held the engine thread ~0.4 s at 1 M devices; the slicer copies it a slice
// per batch instead, and still ends with a point-in-time copy:
//
//   begin()            nothing copied yet
//   step(engine, k)    each batch: the next k device indices, in index order; once every index
//                      is copied, the devices that changed after their copy (below) are copied
//                      again. True when nothing is left: every entry equals the engine NOW.
//   take()             in the same batch as the step that returned true, with the state that
//                      goes with it (the policy's text, the outbox seq): all of one moment.
//
// Why the result is a point-in-time copy and not a smear across batches: the slicer is the
// engine's DecisionObserver (it forwards everything to the real one, the alert policy), so it
// hears of every change to what a snapshot holds -- a transition (state, since), a label change,
// a forgotten device. A change to a device not copied yet needs nothing (its slice will read the
// new value); a change to a device already copied queues it for a second copy. The copy is
// complete only when that queue is empty at the end of a step, so at take() every entry is the
// device as it is at that moment. A device new after its index was passed (a reused index) and
// not yet judged (state Unknown) is left out: the same as arriving just after the snapshot.
// Should changes outpace the budget, a step past kCatchUpSteps copies the whole queue at once
// (one longer pause, counted like any other, rather than a snapshot that never completes).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "presence/core/engine.h"

namespace presence::core {

// A compact copy of device records, one entry per device index: ids in one arena, label sets
// shared (a fleet has a few hundred distinct sets, not one per device). presence/store encodes
// it into the snapshot file on the saver thread.
struct DeviceCopy {
  struct Entry {
    std::uint32_t id_chunk = 0;   // into ids
    std::uint32_t id_offset = 0;  // into ids[id_chunk]
    std::uint32_t id_size = 0;    // 0: a hole (no device at this index, or forgotten)
    std::uint32_t labels = 0;     // into label_sets; 0 = no labels
    MonoTime since{};
    State state = State::Unknown;
  };
  // Ids live in chunks that never move: one growing string was copied whole when it grew, inside
  // whichever slice hit its capacity (measured 11 ms at 1 M devices).
  static constexpr std::size_t kIdChunk = 1u << 20;

  std::vector<Entry> entries;        // by device index
  std::vector<std::string> ids;      // a device copied again appends its id again
  std::vector<std::vector<Label>> label_sets{1};

  std::string_view id(const Entry& e) const {
    return std::string_view(ids[e.id_chunk]).substr(e.id_offset, e.id_size);
  }
  void set_id(Entry& e, std::string_view id) {
    if (ids.empty() || ids.back().capacity() - ids.back().size() < id.size()) {
      ids.emplace_back();
      ids.back().reserve(std::max(kIdChunk, id.size()));
    }
    e.id_chunk = static_cast<std::uint32_t>(ids.size() - 1);
    e.id_offset = static_cast<std::uint32_t>(ids.back().size());
    e.id_size = static_cast<std::uint32_t>(id.size());
    ids.back().append(id);
  }
  // A stand-in for a device's id that needs no copy of it (and no allocation: 5 bytes fit the
  // short-string buffer), and resolve() to put the real id in later, on another thread. The
  // alert policy's copy holds one id per device with alert state (100 k in a mass outage: 20 ms
  // of id strings on the engine thread); the device copy of the same moment has them all. A
  // device id never starts with '\0' (MQTT forbids U+0000 in topics; ingest's ids come from them).
  static std::string index_token(DeviceIndex device) {
    std::string t(5, '\0');
    for (int i = 0; i < 4; ++i) t[1 + i] = static_cast<char>((device >> (8 * i)) & 0xFFu);
    return t;
  }
  // A token becomes the id at its index ("" if that index holds no device); other text is kept.
  void resolve(std::string& id) const {
    if (id.size() != 5 || id[0] != '\0') return;
    DeviceIndex d = 0;
    for (int i = 3; i >= 0; --i) d = (d << 8) | static_cast<unsigned char>(id[1 + i]);
    if (d < entries.size() && entries[d].id_size != 0) id = std::string(this->id(entries[d]));
    else id.clear();
  }
  // Devices held (entries minus holes).
  std::size_t devices() const;
  // The copy as DeviceSnapshots, in index order (tests and tools).
  std::vector<DeviceSnapshot> to_snapshots() const;
};

class SnapshotSlicer final : public DecisionObserver {
 public:
  // Steps past the last index after which the queue of changed devices is copied in one go.
  static constexpr int kCatchUpSteps = 8;

  explicit SnapshotSlicer(DecisionObserver* inner = nullptr) : inner_(inner) {}
  // The observer the engine's decisions are forwarded to (the alert policy; nullptr: none).
  void set_inner(DecisionObserver* inner) { inner_ = inner; }

  // Starts a new copy (an unfinished one is dropped).
  void begin();
  bool active() const { return active_; }
  // Copies up to max_devices entries (at least 1). True when the copy is complete and current.
  bool step(Engine& engine, std::size_t max_devices);
  // The finished copy (after step returned true); the slicer is idle again.
  DeviceCopy take();
  // Drops an unfinished copy.
  void abandon();

  // Of the current (or last finished) copy.
  std::size_t steps() const { return steps_; }
  std::size_t copied() const { return copied_; }      // entries copied, second copies included
  std::size_t recopied() const { return recopied_; }  // second copies of changed devices

  // DecisionObserver: every call is forwarded to the inner observer; the changes are noted.
  void on_transition(const Transition& t) override;
  void on_connect(DeviceIndex device, MonoTime at) override;
  void on_label(DeviceIndex device, std::string_view key, std::string_view value) override;
  void on_blind(bool blind, MonoTime at) override;
  void on_restart_grace(bool active, MonoTime at) override;
  void on_overload(bool overloaded, MonoTime at) override;
  void on_tick(MonoTime now) override;
  void drain_alerts(std::vector<AlertIntent>& out) override;
  bool may_forget(DeviceIndex device) const override;
  void on_forget(DeviceIndex device) override;

 private:
  void changed(DeviceIndex device);

  DecisionObserver* inner_ = nullptr;
  bool active_ = false;
  DeviceCopy copy_;
  DeviceIndex cursor_ = 0;                 // indices below it were copied
  std::vector<DeviceIndex> changed_;       // copied, then changed: to copy again
  std::vector<std::uint8_t> queued_;       // by index: in changed_
  std::size_t steps_ = 0, steps_past_end_ = 0, copied_ = 0, recopied_ = 0;
};

}  // namespace presence::core
