// Interned ids (presence/core/id_table.*): dense indices, stable across growth.
#include "presence/core/id_table.h"

#include <doctest/doctest.h>

#include <string>

using presence::core::IdTable;

TEST_CASE("intern is idempotent, dense and survives growth") {
  IdTable t;
  for (int i = 0; i < 50000; ++i) {
    REQUIRE(t.intern("dev/" + std::to_string(i)) == static_cast<IdTable::Index>(i));
  }
  CHECK(t.size() == 50000);
  for (int i = 0; i < 50000; i += 997) {
    const std::string id = "dev/" + std::to_string(i);
    CHECK(t.intern(id) == static_cast<IdTable::Index>(i));
    CHECK(t.find(id) == static_cast<IdTable::Index>(i));
    CHECK(t.id_of(static_cast<IdTable::Index>(i)) == id);
  }
  CHECK_FALSE(t.find("dev/50000").has_value());
  CHECK(t.id_of(50000).empty());
  CHECK(t.size() == 50000);
}

TEST_CASE("ids that are prefixes of each other, binary bytes, reserve") {
  IdTable t;
  t.reserve(100000, 1000000);
  const auto a = t.intern("ab");
  const auto b = t.intern("abc");
  const auto c = t.intern(std::string("a\0b", 3));
  CHECK(a != b);
  CHECK(b != c);
  CHECK(t.id_of(c) == std::string("a\0b", 3));
  CHECK(t.find("a").has_value() == false);
  CHECK(t.bytes() > 0);
}
