// presence/ha/etcd.*: the JSON-gateway client against a real etcd on loopback (issue 13). What the
// hand-off relies on: fenced transactions of puts and deletes, and a prefix scan read in pages.
#include <doctest/doctest.h>

#include <cstdio>

#include "presence/ha/etcd.h"
#include "test/integration/ha/harness.h"

namespace presence::hatest {

TEST_CASE("etcd client: fenced txn of puts and deletes; a prefix scan in pages sees every key once") {
  Etcd server;
  server.start();
  ha::Etcd etcd({server.url()}, std::chrono::milliseconds(2000));
  const auto lease = etcd.grant(10);
  REQUIRE(lease);
  const auto won = etcd.campaign("/t/leader", "me", *lease);
  REQUIRE(won);
  REQUIRE(won->won);
  const std::int64_t fence = won->create_revision;

  SUBCASE("fenced: applied while the fence holds, refused (nothing written) once it does not") {
    REQUIRE(etcd.put("/t/x", "old"));
    auto ok = etcd.txn({{"/t/a", "1", false}, {"/t/x", "", true}}, "/t/leader", fence);
    REQUIRE(ok);
    CHECK(*ok);
    CHECK(etcd.range("/t/a")->front().value == "1");
    CHECK(etcd.range("/t/x")->empty());
    ok = etcd.txn({{"/t/b", "2", false}, {"/t/a", "", true}}, "/t/leader", fence + 1000);
    REQUIRE(ok);
    CHECK_FALSE(*ok);
    CHECK(etcd.range("/t/b")->empty());
    CHECK(etcd.range("/t/a")->size() == 1);
    ok = etcd.txn({{"/t/a", "", true}});  // unfenced
    REQUIRE(ok);
    CHECK(*ok);
    CHECK(etcd.range("/t/a")->empty());
  }

  SUBCASE("pages: 450 keys read 200 at a time, in order, each once; nothing past the prefix") {
    for (int i = 0; i < 450; ++i) {
      char key[32];
      std::snprintf(key, sizeof key, "/t/s/%04d", i);
      REQUIRE(etcd.put(key, std::to_string(i)));
    }
    REQUIRE(etcd.put("/t/t", "outside"));
    std::vector<std::string> seen;
    std::string from = "/t/s/";
    for (int pages = 0; pages < 10; ++pages) {
      const auto page = etcd.range_from("/t/s/", from, 200);
      REQUIRE(page);
      for (const auto& kv : *page) seen.push_back(kv.key);
      if (page->size() < 200) break;
      from = page->back().key + std::string(1, '\0');
    }
    REQUIRE(seen.size() == 450);
    CHECK(seen.front() == "/t/s/0000");
    CHECK(seen.back() == "/t/s/0449");
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
    CHECK(etcd.range("/t/s/", true, 5)->size() == 5);
  }
}

}  // namespace presence::hatest
