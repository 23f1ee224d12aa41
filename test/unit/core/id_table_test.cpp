// Interned ids (presence/core/id_table.*): dense indices, stable across growth.
#include "presence/core/id_table.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

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

// ---- erase, index reuse, tombstones (issue 19 item 9: expiry of ids seen once) -------------

TEST_CASE("IdTable: an erased id is not found; its index is reused only after release") {
  IdTable t;
  const auto a = t.intern("a");
  const auto b = t.intern("b");
  CHECK(t.erase(a));
  CHECK_FALSE(t.erase(a));        // twice is a no-op
  CHECK_FALSE(t.find("a"));
  CHECK(t.id_of(a) == "a");        // still readable for decisions in flight
  CHECK(t.live() == 1);
  const auto c = t.intern("c");    // not released yet: a fresh index
  CHECK(c != a);
  t.release(a);
  CHECK(t.id_of(a).empty());
  const auto d = t.intern("d");
  CHECK(d == a);                   // reused
  CHECK(t.id_of(d) == "d");
  CHECK(*t.find("b") == b);
  CHECK(*t.find("c") == c);
  CHECK(*t.find("d") == d);
  CHECK(t.intern("a") != a);       // "a" again is a new id under a new index
}

TEST_CASE("IdTable: release of a live index does nothing") {
  IdTable t;
  const auto a = t.intern("a");
  t.release(a);
  CHECK(*t.find("a") == a);
  CHECK(t.live() == 1);
}

TEST_CASE("IdTable: random intern/erase/release keeps find() exact and indices dense") {
  // Property-ish: a reference map is the truth; 60k operations over 2k names, with probe chains
  // full of tombstones, rehashes and arena rebuilds.
  IdTable t;
  std::map<std::string, IdTable::Index> live;
  std::set<IdTable::Index> erased;  // erased, not yet released
  std::map<IdTable::Index, std::string> owner;
  std::size_t peak = 0;  // most indices ever needed at once (live + in flight)
  std::mt19937 rng(42);
  std::size_t reused = 0;
  for (int step = 0; step < 60000; ++step) {
    const std::string id = "dev-" + std::to_string(rng() % 2000) + std::string(rng() % 24, 'x');
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      const auto before = t.size();
      const auto i = t.intern(id);
      REQUIRE(i != IdTable::kNone);
      if (auto it = live.find(id); it != live.end()) {
        REQUIRE(it->second == i);
      } else {
        REQUIRE(erased.count(i) == 0);  // never an index still in flight
        REQUIRE(owner.count(i) == 0);   // no live id holds it
        owner[i] = id;
        if (t.size() == before) ++reused;
        live[id] = i;
      }
    } else if (op < 8 && !live.empty()) {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      REQUIRE(t.erase(it->second));
      erased.insert(it->second);
      owner.erase(it->second);
      live.erase(it);
    } else if (!erased.empty()) {
      t.release(*erased.begin());
      erased.erase(erased.begin());
    }
    if (step % 9973 == 0) {
      for (const auto& [name, i] : live) {
        REQUIRE(t.find(name) == std::optional<IdTable::Index>(i));
        REQUIRE(t.id_of(i) == name);
      }
    }
    REQUIRE(t.find(id).has_value() == (live.count(id) == 1));
    peak = std::max(peak, live.size() + erased.size());
  }
  CHECK(t.live() == live.size());
  CHECK(reused > 500);
  // Indices stay dense: released indices are reused before the range grows.
  CHECK(t.size() <= peak);
}

TEST_CASE("IdTable: a flood that is erased and released gives its memory back") {
  IdTable t;
  for (int i = 0; i < 1000; ++i) t.intern("real-" + std::to_string(i));
  const std::size_t baseline = t.bytes();
  std::vector<IdTable::Index> junk;
  for (int i = 0; i < 200000; ++i) junk.push_back(t.intern("junk-" + std::to_string(i) + "-padding-padding"));
  CHECK(t.bytes() > baseline * 20);
  for (auto i : junk) t.erase(i);
  for (auto i : junk) t.release(i);
  CHECK(t.size() == 1000);
  CHECK(t.live() == 1000);
  CHECK(t.bytes() <= baseline * 2);
  for (int i = 0; i < 1000; ++i) CHECK(t.find("real-" + std::to_string(i)));
  CHECK_FALSE(t.find("junk-7-padding-padding"));
}
