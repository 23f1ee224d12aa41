#include "presence/core/timer_wheel.h"

namespace presence::core {

namespace {
constexpr std::int64_t width(int level) { return std::int64_t{1} << (8 * level); }
}  // namespace

TimerWheel::TimerWheel(std::int64_t start_ms) : cur_(start_ms) {}

void TimerWheel::reserve_ids(std::size_t n) {
  if (n <= nodes_.size()) return;
  nodes_.resize(n, Node{0, kNil});
}

void TimerWheel::shrink_ids(std::size_t n) {
  if (n >= nodes_.size()) return;
  nodes_.resize(n);
}

std::size_t TimerWheel::bytes() const {
  return nodes_.bytes() + pool_.bytes() + block_next_.capacity() * sizeof(std::uint32_t) +
         block_owner_.capacity() * sizeof(std::uint16_t) +
         free_blocks_.capacity() * sizeof(std::uint32_t) + sizeof(slots_);
}

std::uint16_t TimerWheel::slot_for(std::int64_t e, std::int64_t& handled_at) const {
  if (e <= cur_) {
    handled_at = cur_;  // the current slot: swept by the next advance()
    return key_of(0, static_cast<int>(cur_ & (kSlots - 1)));
  }
  const std::int64_t delta = e - cur_;
  for (int level = 0; level < kLevels; ++level) {
    if (delta < width(level + 1)) {
      // The slot is entered when cur_ reaches the start of e's slot at this level (after cur_:
      // delta >= width(level) for level >= 1).
      handled_at = e & ~(width(level) - 1);
      return key_of(level, static_cast<int>((e >> (8 * level)) & (kSlots - 1)));
    }
  }
  // Beyond the top level's reach: park in the top-level slot reached last; it is re-filed (by its
  // true expiry) when that slot cascades.
  const int top = kLevels - 1;
  handled_at = ((cur_ >> (8 * top)) + kSlots - 1) << (8 * top);
  return key_of(top, static_cast<int>(((cur_ >> (8 * top)) + kSlots - 1) & (kSlots - 1)));
}

std::uint32_t TimerWheel::new_block(std::uint16_t key) {
  std::uint32_t b = 0;
  if (!free_blocks_.empty()) {
    b = free_blocks_.back();
    free_blocks_.pop_back();
  } else {
    b = static_cast<std::uint32_t>(block_next_.size());
    block_next_.push_back(kNil);
    block_owner_.push_back(kNoSlot);
    pool_.resize(pool_.size() + kBlock, kNil);
  }
  block_next_[b] = kNil;
  block_owner_[b] = key;
  return b;
}

void TimerWheel::mark(std::uint16_t key, bool occupied) {
  const int level = key / kSlots;
  const int slot = key % kSlots;
  auto& word = bits_[static_cast<std::size_t>(level)][static_cast<std::size_t>(slot >> 6)];
  const std::uint64_t bit = std::uint64_t{1} << (slot & 63);
  word = occupied ? (word | bit) : (word & ~bit);
}

void TimerWheel::append(std::uint16_t key, Id id, std::int64_t handled_at) {
  Slot& s = slots_[key];
  if (s.tail == kNil || s.fill == kBlock) {
    const std::uint32_t b = new_block(key);
    if (s.tail == kNil) {
      s.head = b;
    } else {
      block_next_[s.tail] = b;
    }
    s.tail = b;
    s.fill = 0;
  }
  const std::uint32_t pos = (s.tail << kBlockBits) | s.fill++;
  pool_[pos] = id;
  nodes_[id].pos = pos;
  ++s.entries;
  ++entries_total_;
  if (s.live++ == 0) mark(key, true);
  if (next_due_ != kUnknown && handled_at > cur_ && handled_at < next_due_) next_due_ = handled_at;
  maybe_compact();
}

void TimerWheel::free_chain(std::uint16_t key) {
  Slot& s = slots_[key];
  for (std::uint32_t b = s.head; b != kNil; b = block_next_[b]) {
    block_owner_[b] = kNoSlot;
    free_blocks_.push_back(b);
  }
  entries_total_ -= s.entries;
  s = Slot{};
  mark(key, false);
  // Most of the pool free (a flood of timers that all fired or were cancelled): give it back.
  // Not under a sweep, which holds positions into the pool.
  if (busy_ == kNoSlot && free_blocks_.size() > 256 && free_blocks_.size() * 4 > block_next_.size() * 3)
    repack();
}

void TimerWheel::repack() {
  ChunkedArray<Id, 19> pool;
  std::vector<std::uint32_t> next;
  std::vector<std::uint16_t> owner;
  entries_total_ = 0;
  for (std::size_t k = 0; k < slots_.size(); ++k) {
    Slot& s = slots_[k];
    if (s.head == kNil) continue;
    Slot fresh;
    for (std::uint32_t b = s.head; b != kNil; b = block_next_[b]) {
      const std::uint32_t n = b == s.tail ? s.fill : kBlock;
      for (std::uint32_t i = 0; i < n; ++i) {
        const Id id = pool_[(b << kBlockBits) | i];
        if (id == kNil) continue;
        if (fresh.tail == kNil || fresh.fill == kBlock) {
          const auto nb = static_cast<std::uint32_t>(next.size());
          next.push_back(kNil);
          owner.push_back(static_cast<std::uint16_t>(k));
          pool.resize(pool.size() + kBlock, kNil);
          if (fresh.tail == kNil) fresh.head = nb;
          else next[fresh.tail] = nb;
          fresh.tail = nb;
          fresh.fill = 0;
        }
        const std::uint32_t to = (fresh.tail << kBlockBits) | fresh.fill++;
        pool[to] = id;
        nodes_[id].pos = to;
      }
    }
    fresh.live = fresh.entries = s.live;
    s = fresh;
    entries_total_ += s.entries;
  }
  pool_.swap(pool);
  block_next_.swap(next);
  block_owner_.swap(owner);
  std::vector<std::uint32_t>().swap(free_blocks_);
  block_next_.shrink_to_fit();
  block_owner_.shrink_to_fit();
}

void TimerWheel::remove(std::uint32_t pos) {
  const std::uint16_t key = block_owner_[pos >> kBlockBits];
  Slot& s = slots_[key];
  pool_[pos] = kNil;
  // The last live entry left: the slot holds only tombstones, give its blocks back now (the
  // common case: a slot's timers are re-armed by their devices' next heartbeats).
  if (--s.live == 0 && key != busy_) free_chain(key);
}

void TimerWheel::schedule(Id id, std::int64_t at) {
  assert(id < nodes_.size());
  std::int64_t handled_at = 0;
  const std::uint16_t key = slot_for(at, handled_at);
  const std::uint32_t pos = nodes_[id].pos;
  if (pos != kNil) {
    // Still in the slot it maps to: only the expiry changes (it is read when the slot is
    // handled).
    if (block_owner_[pos >> kBlockBits] == key) {
      nodes_[id].expiry = at;
      return;
    }
    remove(pos);
  } else {
    ++armed_;
  }
  nodes_[id].expiry = at;
  append(key, id, handled_at);
}

void TimerWheel::cancel(Id id) {
  if (id >= nodes_.size()) return;
  const std::uint32_t pos = nodes_[id].pos;
  if (pos == kNil) return;
  nodes_[id].pos = kNil;
  --armed_;
  remove(pos);
  maybe_compact();
}

void TimerWheel::maybe_compact() {
  if (2 * entries_total_ <= 3 * armed_ + kCompactSlack) return;
  // A slot being swept holds garbage a pass cannot remove: during a sweep, at least
  // kCompactSlack more entries before the next pass. Outside sweeps a pass leaves at most
  // 1.5 x armed, so passes are at least kCompactSlack / 3 operations apart.
  if (busy_ != kNoSlot && entries_total_ < compact_floor_) return;
  // Garbage passed the bound: compact every slot whose tombstones are more than half its live
  // entries. The live entries moved are fewer than twice the tombstones removed, so the pass
  // costs O(garbage removed), and afterwards every slot (but one being swept) holds at most
  // 1.5x its live entries. Measured against a 2x bound: 2 B/device less at a million devices,
  // throughput within noise (docs/benchmarks.md "Issue 16: the core").
  for (std::size_t k = 0; k < slots_.size(); ++k) {
    const Slot& s = slots_[k];
    if (k != busy_ && 2 * (s.entries - s.live) > s.live) compact_slot(static_cast<std::uint16_t>(k));
  }
  compact_floor_ = entries_total_ + kCompactSlack;
}

void TimerWheel::compact_slot(std::uint16_t key) {
  Slot& s = slots_[key];
  if (s.live == 0) {
    free_chain(key);
    return;
  }
  // In place: the write cursor never passes the read cursor.
  std::uint32_t wb = s.head, wi = 0;
  for (std::uint32_t rb = s.head; rb != kNil; rb = block_next_[rb]) {
    const std::uint32_t n = rb == s.tail ? s.fill : kBlock;
    for (std::uint32_t ri = 0; ri < n; ++ri) {
      const Id id = pool_[(rb << kBlockBits) | ri];
      if (id == kNil) continue;
      if (wi == kBlock) {
        wb = block_next_[wb];
        wi = 0;
      }
      const std::uint32_t to = (wb << kBlockBits) | wi++;
      pool_[to] = id;
      nodes_[id].pos = to;
    }
  }
  // Blocks after the write cursor's go back to the pool.
  for (std::uint32_t b = block_next_[wb]; b != kNil;) {
    const std::uint32_t next = block_next_[b];
    block_owner_[b] = kNoSlot;
    free_blocks_.push_back(b);
    b = next;
  }
  block_next_[wb] = kNil;
  for (std::uint32_t i = wi; i < kBlock; ++i) pool_[(wb << kBlockBits) | i] = kNil;
  s.tail = wb;
  s.fill = wi;
  entries_total_ -= s.entries - s.live;
  s.entries = s.live;
}

void TimerWheel::cascade_at(std::int64_t t) {
  // Higher levels first, so their timers can land in lower slots cascaded right after.
  for (int level = kLevels - 1; level >= 1; --level) {
    if ((t & (width(level) - 1)) != 0) continue;
    const auto key = key_of(level, static_cast<int>((t >> (8 * level)) & (kSlots - 1)));
    if (slots_[key].head == kNil) continue;
    sweep(key, [&](Id id) {
      std::int64_t handled_at = 0;
      const std::uint16_t to = slot_for(nodes_[id].expiry, handled_at);
      append(to, id, handled_at);
    });
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
