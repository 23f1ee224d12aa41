// Hierarchical timing wheel: O(1) schedule/cancel for millions of per-device timers
// (issue 2: "timers for millions of devices"). One timer per id; ids are dense indices
// (DeviceIndex), so a timer handle is just the index and nodes live in flat arrays: no per-timer
// heap allocation, 16 bytes per id.
//
// Resolution is 1 ms (grace windows are tested at T-1, T, T+1 ms). Four levels of 256 slots cover
// 2^32 ms (~49 days) directly; later expiries park in the last slot of the top level and are
// re-filed when it cascades. advance() skips empty stretches with per-level occupancy bitmaps, so
// jumping hours of simulated time costs O(levels x slots), not O(ms).
#pragma once

#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "presence/core/huge_pages.h"

namespace presence::core {

class TimerWheel {
 public:
  using Id = std::uint32_t;
  static constexpr int kLevels = 4;
  static constexpr int kSlotBits = 8;
  static constexpr int kSlots = 1 << kSlotBits;

  explicit TimerWheel(std::int64_t start_ms = 0);

  // Make ids [0, n) usable. Amortized O(1) per id.
  void reserve_ids(std::size_t n);
  // Forget ids [n, ...) (they must not be armed) and give their memory back if it dominates.
  void shrink_ids(std::size_t n);
  std::size_t id_capacity() const { return nodes_.size() - kSentinels; }

  // Arm (or re-arm) id to fire at `at` (ms). An expiry at or before now() fires on the next
  // advance().
  void schedule(Id id, std::int64_t at);
  void cancel(Id id);
  bool armed(Id id) const { return nodes_[node(id)].next != kNil; }
  std::int64_t expiry(Id id) const { return nodes_[node(id)].expiry; }
  std::size_t armed_count() const { return armed_; }
  std::int64_t now() const { return cur_; }
  // always_inline: see Engine::Impl::prefetch (GCC drops out-of-line prefetch-only calls).
  [[gnu::always_inline]] void prefetch(Id id) const {
    if (node(id) < nodes_.size()) __builtin_prefetch(&nodes_[node(id)]);
  }
  std::size_t bytes() const { return nodes_.capacity() * sizeof(Node); }

  // Fire every timer with expiry <= now, in expiry order (ties in unspecified order), calling
  // fire(id, expiry). The timer is disarmed before the call, so fire may re-schedule it.
  template <class Fire>
  void advance(std::int64_t now, Fire&& fire);

 private:
  static constexpr std::uint32_t kNil = 0xFFFFFFFFu;
  static constexpr std::uint32_t kSentinels = kLevels * kSlots;
  static constexpr std::uint32_t node(Id id) { return id + kSentinels; }
  static constexpr std::uint32_t sentinel(int level, int slot) {
    return static_cast<std::uint32_t>(level * kSlots + slot);
  }

  void link(std::uint32_t n, int level, int slot);
  void unlink(std::uint32_t n);
  void place(std::uint32_t n);  // file node n by its expiry relative to cur_
  void cascade_at(std::int64_t t);
  std::int64_t next_interesting() const;  // earliest time > cur_ at which a slot must be handled
  // First set bit at index >= from (from may be kSlots), or -1.
  static int find_next(const std::array<std::uint64_t, kSlots / 64>& bits, int from);

  // One 16-byte node per id (one cache line touch per schedule/cancel), sentinels first.
  struct Node {
    std::uint32_t next;
    std::uint32_t prev;
    std::int64_t expiry;
  };

  std::int64_t cur_;
  std::size_t armed_ = 0;
  std::vector<Node, HugePageAllocator<Node>> nodes_;  // huge pages: a random node per event
  std::array<std::array<std::uint64_t, kSlots / 64>, kLevels> bits_{};
};

template <class Fire>
void TimerWheel::advance(std::int64_t now, Fire&& fire) {
  while (true) {
    // The current level-0 slot holds only timers due at or before cur_.
    const int slot0 = static_cast<int>(cur_ & (kSlots - 1));
    const auto head = sentinel(0, slot0);
    while (nodes_[head].next != head) {
      const auto n = nodes_[head].next;
      unlink(n);
      fire(static_cast<Id>(n - kSentinels), nodes_[n].expiry);
    }
    if (cur_ >= now) return;
    std::int64_t next = next_interesting();
    if (next > now) next = now;
    cur_ = next;
    cascade_at(cur_);
  }
}

}  // namespace presence::core
