// presence/store/saver.*: the snapshot saver thread (moved out of presence/app/alerting, issue 12).
// A real thread and a real file; every wait is on a condition (futures, bounded), never a sleep.
#include "presence/store/saver.h"

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "test/support/process.h"

using namespace presence;
using namespace presence::store;

namespace {

constexpr auto kWait = std::chrono::seconds(10);

WallAnchor anchor() {
  WallAnchor a;
  a.wall = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'000));
  a.mono = core::MonoTime{};
  return a;
}

SnapshotSaver::Copy copy(std::uint64_t token, std::string incidents) {
  SnapshotSaver::Copy c;
  c.token = token;
  c.incidents = std::move(incidents);
  c.anchor = anchor();
  return c;
}

}  // namespace

TEST_CASE("a copy handed over is written; the outbox hooks run around the write, in order") {
  presence::test::TempDir dir;
  SnapshotStore store(dir.file("state.snap"), [](std::string_view) {});
  std::mutex mu;
  std::vector<std::string> calls;
  auto written = std::make_shared<std::promise<void>>();
  SnapshotSaver saver(store, SnapshotSaver::Hooks{
                                 [&](std::uint64_t token) {
                                   std::lock_guard<std::mutex> lock(mu);
                                   calls.push_back("before " + std::to_string(token));
                                   return token + 100;  // the outbox seq this copy reflects
                                 },
                                 [&, written](std::uint64_t seq) {
                                   {
                                     std::lock_guard<std::mutex> lock(mu);
                                     calls.push_back("after " + std::to_string(seq));
                                   }
                                   written->set_value();
                                 }});
  saver.start();
  saver.hand_over(copy(7, "incidents-7"));
  REQUIRE(written->get_future().wait_for(kWait) == std::future_status::ready);
  saver.stop();
  CHECK(calls == std::vector<std::string>{"before 7", "after 107"});
  const auto loaded = store.load(anchor());
  REQUIRE(loaded.status == LoadStatus::Ok);
  CHECK(loaded.snapshot.incidents == "incidents-7");
  CHECK(loaded.snapshot.outbox_seq == 107);
}

TEST_CASE("the latest copy wins, and stop writes the one handed over last before it returns") {
  presence::test::TempDir dir;
  SnapshotStore store(dir.file("state.snap"), [](std::string_view) {});
  // The first write blocks in before_write until released: copies handed over meanwhile replace
  // each other, only the last is written after it.
  auto release = std::make_shared<std::promise<void>>();
  auto released = release->get_future().share();
  auto entered = std::make_shared<std::promise<void>>();
  std::vector<std::uint64_t> tokens;  // saver thread only, read after stop
  SnapshotSaver saver(store, SnapshotSaver::Hooks{[&, entered, released](std::uint64_t token) {
                                                    tokens.push_back(token);
                                                    if (token == 1) {
                                                      entered->set_value();
                                                      released.wait_for(kWait);
                                                    }
                                                    return std::uint64_t{0};
                                                  },
                                                  {}});
  saver.start();
  saver.hand_over(copy(1, "one"));
  REQUIRE(entered->get_future().wait_for(kWait) == std::future_status::ready);
  saver.hand_over(copy(2, "two"));
  saver.hand_over(copy(3, "three"));
  CHECK_FALSE(saver.idle());
  release->set_value();
  saver.stop(std::chrono::seconds(10));  // bounded; returns once "three" is on disk
  CHECK(tokens == std::vector<std::uint64_t>{1, 3});
  const auto loaded = store.load(anchor());
  REQUIRE(loaded.status == LoadStatus::Ok);
  CHECK(loaded.snapshot.incidents == "three");
  CHECK(saver.idle());
}
