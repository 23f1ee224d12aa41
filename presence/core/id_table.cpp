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
  for (std::size_t s = hash & mask;; s = (s + 1) & mask) {
    const Index i = slots_[s];
    if (i == kNone || id_of(i) == id) return s;
  }
}

std::optional<IdTable::Index> IdTable::find(std::string_view id) const {
  const Index i = slots_[slot_of(id, std::hash<std::string_view>{}(id))];
  if (i == kNone) return std::nullopt;
  return i;
}

IdTable::Index IdTable::intern(std::string_view id) {
  const std::size_t hash = std::hash<std::string_view>{}(id);
  std::size_t s = slot_of(id, hash);
  if (slots_[s] != kNone) return slots_[s];
  if (arena_.size() + id.size() > std::numeric_limits<std::uint32_t>::max() ||
      size() >= kNone - 1) {
    return kNone;
  }
  const auto index = static_cast<Index>(size());
  arena_.append(id);
  offsets_.push_back(static_cast<std::uint32_t>(arena_.size()));
  slots_[s] = index;
  if ((size() + 1) * 4 > slots_.size() * 3) grow();  // keep load <= 3/4
  return index;
}

void IdTable::grow() {
  std::vector<Index> old;
  old.swap(slots_);
  slots_.assign(old.size() * 2, kNone);
  const std::size_t mask = slots_.size() - 1;
  for (Index i : old) {
    if (i == kNone) continue;
    std::size_t s = std::hash<std::string_view>{}(id_of(i)) & mask;
    while (slots_[s] != kNone) s = (s + 1) & mask;
    slots_[s] = i;
  }
}

void IdTable::reserve(std::size_t devices, std::size_t id_bytes) {
  arena_.reserve(id_bytes);
  offsets_.reserve(devices + 1);
  std::size_t want = slots_.size();
  while ((devices + 1) * 4 > want * 3) want *= 2;
  if (want != slots_.size()) {
    // Rehash into the larger table once instead of doubling repeatedly.
    std::vector<Index> old;
    old.swap(slots_);
    slots_.assign(want, kNone);
    const std::size_t mask = want - 1;
    for (Index i : old) {
      if (i == kNone) continue;
      std::size_t s = std::hash<std::string_view>{}(id_of(i)) & mask;
      while (slots_[s] != kNone) s = (s + 1) & mask;
      slots_[s] = i;
    }
  }
}

std::size_t IdTable::bytes() const {
  return arena_.capacity() + offsets_.capacity() * sizeof(std::uint32_t) +
         slots_.capacity() * sizeof(Index);
}

}  // namespace presence::core
