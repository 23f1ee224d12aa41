// A growable array in fixed-size chunks, for the per-device arrays (device records, timer nodes,
// the timer wheel's slot entries).
//
// Why (issue 16 item 4, docs/benchmarks.md "What to change in the core"): a std::vector doubles,
// so at a million devices it holds up to 2x what it uses, copies everything on growth and, with
// malloc, leaves the old buffer resident. Chunks are allocated as the index range grows and never
// move: no copy on growth, no capacity slack beyond the last chunk, and an element's address is
// stable while it exists. Chunks of 2 MiB or more come from HugePageAllocator (one TLB entry per
// 2 MiB: a random device per event). The first chunk grows by doubling up to the chunk size, so a
// small engine (tests, a replay of ten devices) does not map megabytes.
//
// Elements must be trivially copyable (records and nodes are plain data); indexing costs one load
// of the chunk table (a few hundred bytes at a million devices, always in cache).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "presence/core/huge_pages.h"

namespace presence::core {

template <class T, unsigned kChunkBits>
class ChunkedArray {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "ChunkedArray holds plain data");

 public:
  static constexpr std::size_t kChunk = std::size_t{1} << kChunkBits;
  static constexpr std::size_t kMask = kChunk - 1;

  ChunkedArray() = default;
  ChunkedArray(const ChunkedArray&) = delete;
  ChunkedArray& operator=(const ChunkedArray&) = delete;
  ~ChunkedArray() { release_from(0); }

  void swap(ChunkedArray& other) noexcept {
    chunks_.swap(other.chunks_);
    std::swap(first_cap_, other.first_cap_);
    std::swap(size_, other.size_);
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::size_t capacity() const {
    return chunks_.empty() ? 0 : first_cap_ + (chunks_.size() - 1) * kChunk;
  }
  // Bytes held (what the engine's own accounting counts).
  std::size_t bytes() const { return capacity() * sizeof(T) + chunks_.capacity() * sizeof(T*); }

  T& operator[](std::size_t i) { return chunks_[i >> kChunkBits][i & kMask]; }
  const T& operator[](std::size_t i) const { return chunks_[i >> kChunkBits][i & kMask]; }
  T& back() { return (*this)[size_ - 1]; }

  // always_inline: see Engine::Impl::prefetch (GCC drops out-of-line prefetch-only calls).
  [[gnu::always_inline]] void prefetch(std::size_t i) const {
    if (i < size_) __builtin_prefetch(&(*this)[i]);
  }

  void reserve(std::size_t n) {
    if (n <= capacity()) return;
    if (chunks_.size() <= 1 && first_cap_ < kChunk) {
      // The first chunk grows like a vector until it is a full chunk.
      std::size_t cap = std::max<std::size_t>(first_cap_ * 2, 16);
      while (cap < n && cap < kChunk) cap *= 2;
      cap = std::min(cap, kChunk);
      T* fresh = HugePageAllocator<T>{}.allocate(cap);
      if (!chunks_.empty()) {
        std::memcpy(static_cast<void*>(fresh), chunks_[0], size_ * sizeof(T));
        HugePageAllocator<T>{}.deallocate(chunks_[0], first_cap_);
        chunks_[0] = fresh;
      } else {
        chunks_.push_back(fresh);
      }
      first_cap_ = cap;
    }
    while (capacity() < n) chunks_.push_back(HugePageAllocator<T>{}.allocate(kChunk));
  }

  void push_back(const T& value) {
    if (size_ == capacity()) reserve(size_ + 1);
    (*this)[size_++] = value;
  }

  void pop_back() { resize(size_ - 1); }

  // The first `count` elements from index `at` are contiguous when they do not cross a chunk
  // boundary (callers that need a contiguous run start it on the next chunk).
  static bool crosses(std::size_t at, std::size_t count) {
    return count != 0 && (at & kMask) + count > kChunk;
  }

  // Grows with copies of value; shrinking gives whole chunks beyond the new size back.
  void resize(std::size_t n, const T& value = T{}) {
    if (n > size_) {
      reserve(n);
      for (std::size_t i = size_; i < n; ++i) (*this)[i] = value;
    }
    size_ = n;
    const std::size_t keep = n == 0 ? 0 : std::max<std::size_t>(1, (n + kChunk - 1) >> kChunkBits);
    if (keep < chunks_.size()) release_from(keep);
    // Down to a quarter of the first chunk: it shrinks too (a flood of ids that all expired).
    if (chunks_.size() == 1 && first_cap_ > 1024 && n * 4 < first_cap_) {
      std::size_t cap = 16;
      while (cap < n) cap *= 2;
      T* fresh = HugePageAllocator<T>{}.allocate(cap);
      std::memcpy(static_cast<void*>(fresh), chunks_[0], n * sizeof(T));
      HugePageAllocator<T>{}.deallocate(chunks_[0], first_cap_);
      chunks_[0] = fresh;
      first_cap_ = cap;
    }
  }

 private:
  void release_from(std::size_t keep) {
    for (std::size_t c = keep; c < chunks_.size(); ++c)
      HugePageAllocator<T>{}.deallocate(chunks_[c], c == 0 ? first_cap_ : kChunk);
    chunks_.resize(keep);
    if (keep == 0) first_cap_ = 0;
    if (chunks_.capacity() > 64 && chunks_.size() * 4 < chunks_.capacity()) chunks_.shrink_to_fit();
  }

  std::vector<T*> chunks_;
  std::size_t first_cap_ = 0;  // capacity of chunks_[0] (kChunk once a second chunk exists)
  std::size_t size_ = 0;
};

}  // namespace presence::core
