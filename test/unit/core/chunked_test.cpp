// ChunkedArray (presence/core/chunked.h): fixed chunks, no copy on growth, memory given back.
#include "presence/core/chunked.h"

#include <doctest/doctest.h>

#include <cstdint>

using presence::core::ChunkedArray;

TEST_CASE("growth across chunks keeps every value and never moves an element") {
  ChunkedArray<std::uint32_t, 10> a;  // 1024 per chunk
  a.push_back(7);
  const std::uint32_t* element_1100 = nullptr;
  for (std::uint32_t i = 1; i < 5000; ++i) {
    a.push_back(i * 3);
    if (i == 1500) element_1100 = &a[1100];  // in the second chunk, a full one
  }
  CHECK(a.size() == 5000);
  CHECK(a[0] == 7);
  for (std::uint32_t i = 1; i < 5000; ++i) REQUIRE(a[i] == i * 3);
  CHECK(element_1100 == &a[1100]);
  // No 2x capacity: at most one chunk beyond the size.
  CHECK(a.capacity() >= 5000);
  CHECK(a.capacity() < 5000 + 1024);
}

TEST_CASE("a small array does not take a whole chunk; the first chunk grows by doubling") {
  ChunkedArray<std::uint64_t, 18> a;  // 2 MiB chunks
  a.resize(10, 5);
  CHECK(a.capacity() < 64);
  CHECK(a.bytes() < 1024);
  a.resize(100000, 9);
  CHECK(a[9] == 5);
  CHECK(a[10] == 9);
  CHECK(a[99999] == 9);
}

TEST_CASE("shrinking gives whole chunks back, and a mostly empty first chunk shrinks too") {
  ChunkedArray<std::uint32_t, 12> a;  // 4096 per chunk
  a.resize(40000, 1);
  const std::size_t big = a.bytes();
  a.resize(5000);
  CHECK(a.size() == 5000);
  CHECK(a.capacity() == 2 * 4096);
  CHECK(a.bytes() < big / 4);
  a.resize(100);
  CHECK(a.capacity() < 4096 / 4);
  for (std::size_t i = 0; i < 100; ++i) REQUIRE(a[i] == 1);
  a.pop_back();
  CHECK(a.size() == 99);
  a.resize(0);
  CHECK(a.capacity() == 0);
  a.push_back(3);
  CHECK(a[0] == 3);
}

TEST_CASE("crosses(): a run that would straddle a chunk boundary") {
  using A = ChunkedArray<char, 4>;  // 16 per chunk
  CHECK_FALSE(A::crosses(0, 16));
  CHECK(A::crosses(1, 16));
  CHECK_FALSE(A::crosses(15, 1));
  CHECK(A::crosses(15, 2));
  CHECK_FALSE(A::crosses(16, 0));
}
