#include "presence/core/timer_wheel.h"

namespace presence::core {

namespace {
constexpr std::int64_t width(int level) { return std::int64_t{1} << (8 * level); }
}  // namespace

TimerWheel::TimerWheel(std::int64_t start_ms) : cur_(start_ms) {
  nodes_.resize(kSentinels);
  for (std::uint32_t s = 0; s < kSentinels; ++s) nodes_[s] = Node{s, s, 0};
}

void TimerWheel::reserve_ids(std::size_t n) {
  if (n + kSentinels <= nodes_.size()) return;
  nodes_.resize(n + kSentinels, Node{kNil, kNil, 0});
}

void TimerWheel::shrink_ids(std::size_t n) {
  if (n + kSentinels >= nodes_.size()) return;
  nodes_.resize(n + kSentinels);
  if (nodes_.capacity() > 4096 && nodes_.size() * 4 < nodes_.capacity()) nodes_.shrink_to_fit();
}

void TimerWheel::link(std::uint32_t n, int level, int slot) {
  const auto s = sentinel(level, slot);
  const auto tail = nodes_[s].prev;
  nodes_[tail].next = n;
  nodes_[n].prev = tail;
  nodes_[n].next = s;
  nodes_[s].prev = n;
  bits_[static_cast<std::size_t>(level)][static_cast<std::size_t>(slot >> 6)] |=
      std::uint64_t{1} << (slot & 63);
}

void TimerWheel::unlink(std::uint32_t n) {
  const auto p = nodes_[n].prev;
  const auto x = nodes_[n].next;
  nodes_[p].next = x;
  nodes_[x].prev = p;
  nodes_[n].next = nodes_[n].prev = kNil;
  --armed_;
  // A sentinel whose list became empty clears its occupancy bit.
  if (p == x && p < kSentinels) {
    const int level = static_cast<int>(p) / kSlots;
    const int slot = static_cast<int>(p) % kSlots;
    bits_[static_cast<std::size_t>(level)][static_cast<std::size_t>(slot >> 6)] &=
        ~(std::uint64_t{1} << (slot & 63));
  }
}

void TimerWheel::place(std::uint32_t n) {
  const std::int64_t e = nodes_[n].expiry;
  ++armed_;
  if (e <= cur_) {
    link(n, 0, static_cast<int>(cur_ & (kSlots - 1)));
    return;
  }
  const std::int64_t delta = e - cur_;
  for (int level = 0; level < kLevels; ++level) {
    if (delta < width(level + 1)) {
      link(n, level, static_cast<int>((e >> (8 * level)) & (kSlots - 1)));
      return;
    }
  }
  // Beyond the top level's reach: park in the top-level slot reached last; it is re-filed (by its
  // true expiry) when that slot cascades.
  const int top = kLevels - 1;
  link(n, top, static_cast<int>(((cur_ >> (8 * top)) + kSlots - 1) & (kSlots - 1)));
}

void TimerWheel::schedule(Id id, std::int64_t at) {
  const auto n = node(id);
  assert(n < nodes_.size());
  if (nodes_[n].next != kNil) unlink(n);
  nodes_[n].expiry = at;
  place(n);
}

void TimerWheel::cancel(Id id) {
  const auto n = node(id);
  if (n < nodes_.size() && nodes_[n].next != kNil) unlink(n);
}

void TimerWheel::cascade_at(std::int64_t t) {
  // Higher levels first, so their timers can land in lower slots cascaded right after.
  for (int level = kLevels - 1; level >= 1; --level) {
    if ((t & (width(level) - 1)) != 0) continue;
    const int slot = static_cast<int>((t >> (8 * level)) & (kSlots - 1));
    const auto head = sentinel(level, slot);
    while (nodes_[head].next != head) {
      const auto n = nodes_[head].next;
      unlink(n);
      place(n);
    }
  }
}

std::int64_t TimerWheel::next_interesting() const {
  std::int64_t best = INT64_MAX;
  for (int level = 0; level < kLevels; ++level) {
    const auto& bits = bits_[static_cast<std::size_t>(level)];
    const int cur_slot = static_cast<int>((cur_ >> (8 * level)) & (kSlots - 1));
    const std::int64_t w = width(level);
    const std::int64_t base = cur_ & ~(w * kSlots - 1);  // start of this level's rotation
    // First occupied slot after cur_slot in this rotation; else the first occupied slot of the
    // next rotation (slot cur_slot itself was cascaded when cur_ entered it, so anything filed
    // there now belongs to the next rotation).
    std::int64_t t = INT64_MAX;
    if (int s = find_next(bits, cur_slot + 1); s >= 0) {
      t = base + s * w;
    } else if (s = find_next(bits, 0); s >= 0 && s <= cur_slot) {
      t = base + (kSlots + s) * w;
    }
    if (t < best) best = t;
  }
  return best;
}

int TimerWheel::find_next(const std::array<std::uint64_t, kSlots / 64>& bits, int from) {
  for (int word = from >> 6; word < kSlots / 64; ++word) {
    std::uint64_t m = bits[static_cast<std::size_t>(word)];
    if (word == (from >> 6)) m &= ~std::uint64_t{0} << (from & 63);
    if (m != 0) return word * 64 + std::countr_zero(m);
  }
  return -1;
}

}  // namespace presence::core
