// Interned device ids: id bytes in one arena, an offset per device and an open-addressing table
// of indices. About 4 bytes per device plus 5-11 bytes of table (load factor 3/8..3/4) beyond the
// id bytes themselves; no per-device heap allocation (issue 2: state compact).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace presence::core {

class IdTable {
 public:
  using Index = std::uint32_t;
  static constexpr Index kNone = 0xFFFFFFFFu;
  // A slot holds the index in its low 27 bits and 5 bits of the id's hash above them, so a probe
  // rejects 31 of 32 non-matching slots without touching the arena (two cache misses saved).
  // Hence at most 2^27 - 1 (134 million) devices.
  static constexpr int kIndexBits = 27;
  static constexpr Index kMaxDevices = (Index{1} << kIndexBits) - 1;

  IdTable();

  // Index of id, adding it if new. kNone when the arena (4 GiB) or kMaxDevices is exhausted.
  Index intern(std::string_view id);
  std::optional<Index> find(std::string_view id) const;
  std::string_view id_of(Index index) const;
  std::size_t size() const { return offsets_.size() - 1; }
  std::size_t bytes() const;  // memory held, for the bytes/device measurement

  void reserve(std::size_t devices, std::size_t id_bytes);

 private:
  static constexpr Index kIndexMask = kMaxDevices;
  static Index tag_of(std::size_t hash) { return static_cast<Index>(hash >> 59) << kIndexBits; }
  std::size_t slot_of(std::string_view id, std::size_t hash) const;  // slot holding id or empty
  void rehash(std::size_t slots);

  std::string arena_;
  std::vector<std::uint32_t> offsets_;  // offsets_[i]..offsets_[i+1] is id i
  std::vector<Index> slots_;            // tag | index, kNone = empty; size is a power of two
};

}  // namespace presence::core
