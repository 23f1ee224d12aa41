// Interned device ids: id bytes in one arena, an (offset, length) per device and an
// open-addressing table of indices. About 6 bytes per device plus 5-11 bytes of table (load factor
// 3/8..3/4) beyond the id bytes themselves; no per-device heap allocation (issue 2: state compact).
//
// Ids can be erased (issue 19 item 9: expiry of ids seen once). An erased id leaves a tombstone in
// the table (linear probing must keep walking past it) and its index goes to a free list once the
// caller releases it, so the next new id reuses it and the index space stays dense. Erased ids'
// arena bytes are reclaimed by a rebuild once they are more than half the arena; tombstones by a
// rehash once live + tombstones pass the load limit. Indices at the end of the range that are
// released are trimmed, so the arrays shrink back after a flood of ids that all expire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "presence/core/chunked.h"
#include "presence/core/huge_pages.h"

namespace presence::core {

class IdTable {
 public:
  using Index = std::uint32_t;
  static constexpr Index kNone = 0xFFFFFFFFu;
  // A slot holds the index in its low 27 bits and 5 bits of the id's hash above them, so a probe
  // rejects 31 of 32 non-matching slots without touching the arena (two cache misses saved).
  // kTomb marks an erased slot; no tag|index equals it because indices stay below 2^27 - 2.
  static constexpr int kIndexBits = 27;
  static constexpr Index kMaxDevices = (Index{1} << kIndexBits) - 2;
  static constexpr std::size_t kMaxIdBytes = 0xFFFF;

  IdTable();

  // Index of id, adding it if new (reusing a released index first). kNone when the arena
  // (4 GiB), kMaxDevices or kMaxIdBytes is exhausted.
  Index intern(std::string_view id);
  std::optional<Index> find(std::string_view id) const;
  // The id of index; still readable after erase() until release(), "" for a free index.
  std::string_view id_of(Index index) const;
  // Index range in use: live, erased and free indices below it.
  std::size_t size() const { return offsets_.size(); }
  std::size_t live() const { return live_; }
  std::size_t bytes() const;  // memory held, for the bytes/device measurement

  // Remove id `index` from lookups (find/intern no longer see it). Its index is not reused until
  // release(index): callers that still hold the index in flight (decisions not yet drained)
  // release it later. Returns false if index is not a live id.
  bool erase(Index index);
  // Make an erased index reusable. Trims released indices at the end of the range.
  void release(Index index);

  void reserve(std::size_t devices, std::size_t id_bytes);

 private:
  static constexpr Index kTomb = kNone - 1;
  static constexpr Index kIndexMask = (Index{1} << kIndexBits) - 1;
  static constexpr std::uint16_t kFreeLen = 0xFFFF;  // lens_ of an index that holds no id
  static Index tag_of(std::size_t hash) { return static_cast<Index>(hash >> 59) << kIndexBits; }
  bool used(Index v) const { return v != kNone && v != kTomb; }
  // Slot holding id, else (for insertion) the first tombstone or empty slot on its probe path.
  std::size_t slot_of(std::string_view id, std::size_t hash, bool& found) const;
  void rehash(std::size_t slots);
  void compact_arena();
  void trim();

  // Chunked (presence/core/chunked.h, issue 16): no 2x growth slack, no copy on growth. An id
  // never crosses a 1 MiB arena chunk (ids are < 64 KiB): it starts on the next chunk instead,
  // so id_of() is one string_view.
  using Arena = ChunkedArray<char, 20>;
  void append_id(std::string_view id, Arena& arena, std::uint32_t& offset);
  Arena arena_;
  ChunkedArray<std::uint32_t, 19> offsets_;  // id i is arena_[offsets_[i], + lens_[i])
  ChunkedArray<std::uint16_t, 20> lens_;     // kFreeLen = no id (released)
  std::vector<Index, HugePageAllocator<Index>> slots_;  // huge pages: a random slot per lookup
             // tag | index, kNone = empty, kTomb = erased
  std::vector<Index> free_;             // released indices below size()
  std::size_t live_ = 0;
  std::size_t tombs_ = 0;
  std::size_t garbage_ = 0;             // arena bytes of erased ids
};

}  // namespace presence::core
