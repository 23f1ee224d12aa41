#include "presence/core/id_table.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>

namespace presence::core {

IdTable::IdTable() : slots_(1024, kNone) {}

std::string_view IdTable::id_of(Index index) const {
  if (index >= size() || lens_[index] == kFreeLen) return {};
  if (lens_[index] == 0) return {};
  return std::string_view(&arena_[offsets_[index]], lens_[index]);
}

std::size_t IdTable::slot_of(std::string_view id, std::size_t hash, bool& found) const {
  const std::size_t mask = slots_.size() - 1;
  const Index tag = tag_of(hash);
  std::size_t first_tomb = slots_.size();
  for (std::size_t s = hash & mask;; s = (s + 1) & mask) {
    const Index v = slots_[s];
    if (v == kNone) {
      found = false;
      return first_tomb != slots_.size() ? first_tomb : s;
    }
    if (v == kTomb) {
      if (first_tomb == slots_.size()) first_tomb = s;
      continue;
    }
    if ((v & ~kIndexMask) == tag && id_of(v & kIndexMask) == id) {
      found = true;
      return s;
    }
  }
}

std::optional<IdTable::Index> IdTable::find(std::string_view id) const {
  bool found = false;
  const std::size_t s = slot_of(id, std::hash<std::string_view>{}(id), found);
  if (!found) return std::nullopt;
  return slots_[s] & kIndexMask;
}

IdTable::Index IdTable::intern(std::string_view id) {
  const std::size_t hash = std::hash<std::string_view>{}(id);
  bool found = false;
  const std::size_t s = slot_of(id, hash, found);
  if (found) return slots_[s] & kIndexMask;
  if (id.size() >= kFreeLen ||
      arena_.size() + id.size() + Arena::kChunk > std::numeric_limits<std::uint32_t>::max() ||
      (free_.empty() && size() >= kMaxDevices)) {
    return kNone;
  }
  Index index = 0;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = static_cast<Index>(size());
    offsets_.push_back(0);
    lens_.push_back(kFreeLen);
  }
  append_id(id, arena_, offsets_[index]);
  lens_[index] = static_cast<std::uint16_t>(id.size());
  if (slots_[s] == kTomb) --tombs_;
  slots_[s] = tag_of(hash) | index;
  ++live_;
  // Keep (live + tombstones) <= 3/4 of the table; a rehash drops the tombstones.
  if ((live_ + tombs_ + 1) * 4 > slots_.size() * 3) {
    std::size_t want = slots_.size();
    while ((live_ + 1) * 4 > want * 3) want *= 2;
    rehash(want);
  }
  return index;
}

bool IdTable::erase(Index index) {
  const std::string_view id = id_of(index);
  if (id.empty()) return false;
  bool found = false;
  const std::size_t s = slot_of(id, std::hash<std::string_view>{}(id), found);
  if (!found || (slots_[s] & kIndexMask) != index) return false;  // already erased
  slots_[s] = kTomb;
  ++tombs_;
  --live_;
  return true;
}

void IdTable::release(Index index) {
  if (index >= size() || lens_[index] == kFreeLen) return;
  const std::string_view id = id_of(index);
  bool found = false;
  const std::size_t s = slot_of(id, std::hash<std::string_view>{}(id), found);
  if (found && (slots_[s] & kIndexMask) == index) return;  // still live: erase() first
  garbage_ += lens_[index];
  lens_[index] = kFreeLen;
  offsets_[index] = 0;
  free_.push_back(index);
  trim();
  // Reclaim erased ids' bytes once they dominate (a flood of junk ids that expired): a rebuild
  // copies the live ids, O(live bytes), at most once per halving of the arena.
  if (garbage_ > 4096 && garbage_ * 2 > arena_.size()) compact_arena();
}

void IdTable::trim() {
  // Released indices at the top of the range are dropped, so a flood that expired leaves no
  // trace in the per-index arrays (callers shrink theirs to size()).
  if (lens_.empty() || lens_.back() != kFreeLen) return;
  while (!lens_.empty() && lens_.back() == kFreeLen) {
    lens_.pop_back();
    offsets_.pop_back();
  }
  const auto n = static_cast<Index>(size());
  free_.erase(std::remove_if(free_.begin(), free_.end(), [n](Index i) { return i >= n; }), free_.end());
  // offsets_ and lens_ gave their chunks back in pop_back().
  if (free_.capacity() > 1024 && free_.size() * 4 < free_.capacity()) free_.shrink_to_fit();
  // The table shrinks with the live count (tombstones go with the rehash).
  std::size_t want = 1024;
  while ((live_ + 1) * 8 > want * 3) want *= 2;  // load <= 3/8 after a shrink
  if (want * 4 <= slots_.size()) rehash(want);
}

void IdTable::append_id(std::string_view id, Arena& arena, std::uint32_t& offset) {
  std::size_t at = arena.size();
  if (Arena::crosses(at, id.size())) at = (at | Arena::kMask) + 1;  // start the next chunk
  arena.resize(at + id.size());
  if (!id.empty()) std::memcpy(&arena[at], id.data(), id.size());
  offset = static_cast<std::uint32_t>(at);
}

void IdTable::compact_arena() {
  Arena fresh;
  fresh.reserve(arena_.size() - garbage_);
  for (Index i = 0; i < size(); ++i) {
    if (lens_[i] == kFreeLen) continue;
    append_id(id_of(i), fresh, offsets_[i]);
  }
  arena_.swap(fresh);
  garbage_ = 0;
}

void IdTable::rehash(std::size_t slots) {
  decltype(slots_) old;
  old.swap(slots_);
  slots_.assign(slots, kNone);
  tombs_ = 0;
  const std::size_t mask = slots - 1;
  for (Index v : old) {
    if (!used(v)) continue;
    // The tag holds only 5 hash bits: re-hash the id for its position.
    std::size_t s = std::hash<std::string_view>{}(id_of(v & kIndexMask)) & mask;
    while (slots_[s] != kNone) s = (s + 1) & mask;
    slots_[s] = v;
  }
}

void IdTable::reserve(std::size_t devices, std::size_t id_bytes) {
  arena_.reserve(id_bytes);
  offsets_.reserve(devices);
  lens_.reserve(devices);
  std::size_t want = slots_.size();
  while ((devices + 1) * 4 > want * 3) want *= 2;
  if (want != slots_.size()) rehash(want);  // once, instead of doubling repeatedly
}

std::size_t IdTable::bytes() const {
  return arena_.bytes() + offsets_.bytes() + lens_.bytes() + free_.capacity() * sizeof(Index) +
         slots_.capacity() * sizeof(Index);
}

}  // namespace presence::core
