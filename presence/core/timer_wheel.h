// Hierarchical timing wheel: O(1) schedule/cancel for millions of per-device timers
// (issue 2: "timers for millions of devices"). One timer per id; ids are dense indices
// (DeviceIndex), so a timer handle is just the index: no per-timer heap allocation.
//
// Resolution is 1 ms (grace windows are tested at T-1, T, T+1 ms). Four levels of 256 slots cover
// 2^32 ms (~49 days) directly; later expiries park in the last slot of the top level and are
// re-filed when it cascades. advance() skips empty stretches with per-level occupancy bitmaps and
// remembers the next slot that needs handling, so a call with nothing due costs a comparison.
//
// Re-arm without unlinking (issue 16 item 4, docs/benchmarks.md): a slot is a list of ids in
// fixed blocks of a shared pool, not a doubly linked list through the nodes. A timer's node holds
// its expiry and the position of its one live entry. Re-arming to another slot overwrites that
// entry with a tombstone and appends the id to the new slot's tail block; no neighbour is
// touched (with linked lists, unlinking the neighbours' next/prev was two cache misses per
// heartbeat at a million devices, the core's largest cost). A re-arm that maps to the slot the
// timer is already in only writes the expiry. Tombstones are skipped when a slot is swept; a slot
// whose live entries all left is freed at once; and the pool holds at most 1.5x the armed timers
// (plus kCompactSlack / 2): past that, every slot with more tombstones than half its live entries
// is compacted.
#pragma once

#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "presence/core/chunked.h"

namespace presence::core {

class TimerWheel {
 public:
  using Id = std::uint32_t;
  static constexpr int kLevels = 4;
  static constexpr int kSlotBits = 8;
  static constexpr int kSlots = 1 << kSlotBits;
  // Entries per pool block (1 KiB).
  static constexpr int kBlockBits = 8;
  static constexpr std::uint32_t kBlock = 1u << kBlockBits;
  // Garbage allowed beyond 1.5 x armed (counted twice: 2 x entries <= 3 x armed + kCompactSlack)
  // before a compaction pass; amortizes the pass's scan of the slot headers.
  static constexpr std::size_t kCompactSlack = 4096;

  explicit TimerWheel(std::int64_t start_ms = 0);

  // Make ids [0, n) usable. Amortized O(1) per id.
  void reserve_ids(std::size_t n);
  // Forget ids [n, ...) (they must not be armed) and give their memory back.
  void shrink_ids(std::size_t n);
  std::size_t id_capacity() const { return nodes_.size(); }

  // Arm (or re-arm) id to fire at `at` (ms). An expiry at or before now() fires on the next
  // advance().
  void schedule(Id id, std::int64_t at);
  void cancel(Id id);
  bool armed(Id id) const { return nodes_[id].pos != kNil; }
  std::int64_t expiry(Id id) const { return nodes_[id].expiry; }
  std::size_t armed_count() const { return armed_; }
  std::int64_t now() const { return cur_; }
  // always_inline: see Engine::Impl::prefetch (GCC drops out-of-line prefetch-only calls).
  [[gnu::always_inline]] void prefetch(Id id) const { nodes_.prefetch(id); }
  std::size_t bytes() const;
  // Slot entries held, live and tombstones: armed_count() <= entries() and
  // 2 x entries() <= 3 x armed_count() + kCompactSlack outside advance() (tests check the bound).
  std::size_t entries() const { return entries_total_; }

  // Fire every timer with expiry <= now, in expiry order (ties in unspecified order), calling
  // fire(id, expiry). The timer is disarmed before the call, so fire may re-schedule it.
  template <class Fire>
  void advance(std::int64_t now, Fire&& fire);

 private:
  static constexpr std::uint32_t kNil = 0xFFFFFFFFu;
  static constexpr std::uint16_t kNoSlot = 0xFFFF;
  static constexpr std::int64_t kUnknown = INT64_MIN;  // next_due_ must be recomputed

  // 12 bytes per id: the expiry and the pool position of its live entry (kNil = not armed).
  struct [[gnu::packed]] Node {
    std::int64_t expiry;
    std::uint32_t pos;
  };
  static_assert(sizeof(Node) == 12);

  struct Slot {
    std::uint32_t head = kNil;  // first block of the chain
    std::uint32_t tail = kNil;  // last block; appends go here
    std::uint32_t fill = 0;     // entries used in the tail block
    std::uint32_t live = 0;     // entries that are armed timers
    std::uint32_t entries = 0;  // entries not yet swept, live or tombstone
  };

  static constexpr std::uint16_t key_of(int level, int slot) {
    return static_cast<std::uint16_t>(level * kSlots + slot);
  }
  // Slot for expiry e relative to cur_, and the time that slot is handled (next_due_).
  std::uint16_t slot_for(std::int64_t e, std::int64_t& handled_at) const;
  void append(std::uint16_t key, Id id, std::int64_t handled_at);
  void remove(std::uint32_t pos);  // tombstone the live entry at pos
  void free_chain(std::uint16_t key);
  void repack();  // a fresh pool holding only the live entries
  std::uint32_t new_block(std::uint16_t key);
  void maybe_compact();
  void compact_slot(std::uint16_t key);
  void mark(std::uint16_t key, bool occupied);
  template <class Visit>
  void sweep(std::uint16_t key, Visit&& visit);
  void cascade_at(std::int64_t t);
  std::int64_t next_interesting() const;  // earliest time > cur_ at which a slot must be handled
  // First set bit at index >= from (from may be kSlots), or -1.
  static int find_next(const std::array<std::uint64_t, kSlots / 64>& bits, int from);

  std::int64_t cur_;
  std::int64_t next_due_ = kUnknown;
  std::size_t armed_ = 0;
  std::size_t entries_total_ = 0;
  std::size_t compact_floor_ = 0;  // no compaction pass before entries_total_ passes this
  std::uint16_t busy_ = kNoSlot;   // slot being swept: not freed or compacted under the sweep
  ChunkedArray<Node, 19> nodes_;   // 6 MiB chunks, huge pages: a random node per event
  ChunkedArray<Id, 19> pool_;      // slot entries in blocks of kBlock; kNil = tombstone
  std::vector<std::uint32_t> block_next_;   // per block: next block of its chain
  std::vector<std::uint16_t> block_owner_;  // per block: slot key of its chain
  std::vector<std::uint32_t> free_blocks_;
  std::array<Slot, kLevels * kSlots> slots_{};
  std::array<std::array<std::uint64_t, kSlots / 64>, kLevels> bits_{};
};

// Visit every entry of slot `key` in order, also those appended while visiting; visit(pos, id)
// is called for live entries after the entry is consumed (the slot's live count and entry count
// no longer include it). The slot is freed afterwards.
template <class Visit>
void TimerWheel::sweep(std::uint16_t key, Visit&& visit) {
  Slot& s = slots_[key];
  busy_ = key;
  std::uint32_t b = s.head;
  std::uint32_t i = 0;
  while (b != kNil) {
    const bool at_tail = b == s.tail;
    const std::uint32_t limit = at_tail ? s.fill : kBlock;
    if (i >= limit) {
      if (at_tail) break;
      b = block_next_[b];
      i = 0;
      continue;
    }
    const std::uint32_t pos = (b << kBlockBits) | i;
    // The loads of a sweep are independent: prefetch the node a few entries ahead.
    if (i + 8 < limit) {
      const Id ahead = pool_[pos + 8];
      if (ahead != kNil) nodes_.prefetch(ahead);
    }
    ++i;
    const Id id = pool_[pos];
    --s.entries;
    --entries_total_;
    if (id == kNil) continue;
    pool_[pos] = kNil;
    --s.live;
    nodes_[id].pos = kNil;
    visit(id);
  }
  busy_ = kNoSlot;
  assert(s.live == 0 && s.entries == 0);
  free_chain(key);
}

template <class Fire>
void TimerWheel::advance(std::int64_t now, Fire&& fire) {
  while (true) {
    // The current level-0 slot holds only timers due at or before cur_.
    const auto key0 = key_of(0, static_cast<int>(cur_ & (kSlots - 1)));
    if (slots_[key0].head != kNil) {
      sweep(key0, [&](Id id) {
        --armed_;
        fire(id, nodes_[id].expiry);
      });
    }
    if (cur_ >= now) return;
    if (next_due_ == kUnknown) next_due_ = next_interesting();
    if (next_due_ > now) {  // nothing to handle up to now: the common case
      cur_ = now;
      return;
    }
    cur_ = next_due_;
    next_due_ = kUnknown;
    cascade_at(cur_);
  }
}

}  // namespace presence::core
