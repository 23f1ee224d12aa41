#include "presence/core/id_table.h"

#include <functional>
#include <limits>

namespace presence::core {

IdTable::IdTable() : offsets_{0}, slots_(1024, kNone) {}

std::string_view IdTable::id_of(Index index) const {
  if (index >= size()) return {};
  return std::string_view(arena_).substr(offsets_[index], offsets_[index + 1] - offsets_[index]);
}

std::size_t IdTable::slot_of(std::string_view id, std::size_t hash) const {
  const std::size_t mask = slots_.size() - 1;
  const Index tag = tag_of(hash);
  for (std::size_t s = hash & mask;; s = (s + 1) & mask) {
    const Index v = slots_[s];
    if (v == kNone) return s;
    if ((v & ~kIndexMask) == tag && id_of(v & kIndexMask) == id) return s;
  }
}

std::optional<IdTable::Index> IdTable::find(std::string_view id) const {
  const Index v = slots_[slot_of(id, std::hash<std::string_view>{}(id))];
  if (v == kNone) return std::nullopt;
  return v & kIndexMask;
}

IdTable::Index IdTable::intern(std::string_view id) {
  const std::size_t hash = std::hash<std::string_view>{}(id);
  const std::size_t s = slot_of(id, hash);
  if (slots_[s] != kNone) return slots_[s] & kIndexMask;
  if (arena_.size() + id.size() > std::numeric_limits<std::uint32_t>::max() ||
      size() >= kMaxDevices) {
    return kNone;
  }
  const auto index = static_cast<Index>(size());
  arena_.append(id);
  offsets_.push_back(static_cast<std::uint32_t>(arena_.size()));
  slots_[s] = tag_of(hash) | index;
  if ((size() + 1) * 4 > slots_.size() * 3) rehash(slots_.size() * 2);  // keep load <= 3/4
  return index;
}

void IdTable::rehash(std::size_t slots) {
  std::vector<Index> old;
  old.swap(slots_);
  slots_.assign(slots, kNone);
  const std::size_t mask = slots - 1;
  for (Index v : old) {
    if (v == kNone) continue;
    // The tag holds only 5 hash bits: re-hash the id for its position.
    std::size_t s = std::hash<std::string_view>{}(id_of(v & kIndexMask)) & mask;
    while (slots_[s] != kNone) s = (s + 1) & mask;
    slots_[s] = v;
  }
}

void IdTable::reserve(std::size_t devices, std::size_t id_bytes) {
  arena_.reserve(id_bytes);
  offsets_.reserve(devices + 1);
  std::size_t want = slots_.size();
  while ((devices + 1) * 4 > want * 3) want *= 2;
  if (want != slots_.size()) rehash(want);  // once, instead of doubling repeatedly
}

std::size_t IdTable::bytes() const {
  return arena_.capacity() + offsets_.capacity() * sizeof(std::uint32_t) +
         slots_.capacity() * sizeof(Index);
}

}  // namespace presence::core
