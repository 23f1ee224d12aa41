// An allocator for the per-device arrays (device records, timer nodes, the id table's slots):
// above 2 MiB it maps the buffer itself, 2 MiB-aligned, and asks for transparent huge pages.
//
// Why (issue 16, docs/benchmarks.md "Where the time goes"): at a million devices every event
// touches a random device record and a random timer node, so the core is memory bound and with
// 4 KiB pages every one of those loads is also a TLB miss. Debian's THP default is `madvise`:
// only memory that asks gets 2 MiB pages. Measured +30 % with glibc's malloc hugetlb tunable;
// this gets the same without a tunable in the unit file.
//
// A buffer of its own mapping also goes back to the kernel when it is freed: a growing vector's
// old buffer (32 MB of records at 1 M devices) no longer stays resident in malloc's heap, which
// was most of the gap between RSS and live heap per device.
//
// Not a system interaction in the sense of the core's rules (no file, socket, clock): it only
// decides how memory is obtained; behaviour is identical with or without huge pages.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace presence::core {

inline constexpr std::size_t kHugePage = std::size_t{2} << 20;

template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}

  static bool mapped(std::size_t n) { return n * sizeof(T) >= kHugePage; }
  static std::size_t mapped_bytes(std::size_t n) {
    return (n * sizeof(T) + kHugePage - 1) & ~(kHugePage - 1);
  }

  T* allocate(std::size_t n) {
    if (!mapped(n)) return std::allocator<T>{}.allocate(n);
    const std::size_t bytes = mapped_bytes(n);
    // Over-map by one huge page and trim both ends, so the buffer starts on a 2 MiB boundary
    // (a huge page can only back an aligned 2 MiB range).
    void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto base = reinterpret_cast<std::uintptr_t>(raw);
    const auto aligned = (base + kHugePage - 1) & ~(std::uintptr_t{kHugePage} - 1);
    if (aligned > base) munmap(raw, aligned - base);
    const std::size_t tail = (base + bytes + kHugePage) - (aligned + bytes);
    if (tail > 0) munmap(reinterpret_cast<void*>(aligned + bytes), tail);
    // Best effort: a kernel without THP (or with it `never`) keeps 4 KiB pages.
    madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
    return reinterpret_cast<T*>(aligned);
  }

  void deallocate(T* p, std::size_t n) noexcept {
    if (!mapped(n)) {
      std::allocator<T>{}.deallocate(p, n);
      return;
    }
    munmap(p, mapped_bytes(n));
  }

  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
};

}  // namespace presence::core
