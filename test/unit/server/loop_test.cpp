// presence/server/loop.*: the run loop's contract with the rooms (issue 12). A real engine thread;
// every wait is on a condition (a future, bounded), never a sleep.
#include "presence/server/loop.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace presence;

namespace {

constexpr auto kWait = std::chrono::seconds(10);

// What the steps saw, written on the engine thread, read after the loop stopped or under mu.
struct Trace {
  std::mutex mu;
  std::vector<std::string> calls;
  void add(std::string s) {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(std::move(s));
  }
  std::vector<std::string> take() {
    std::lock_guard<std::mutex> lock(mu);
    return calls;
  }
};

server::Step traced(Trace& trace, std::string name) {
  server::Step s;
  s.name = name;
  s.start = [&trace, name](core::Engine&, core::MonoTime) { trace.add(name + ".start"); };
  s.run = [&trace, name](server::Batch&) { trace.add(name + ".run"); };
  s.stop = [&trace, name](core::Engine&, core::MonoTime) { trace.add(name + ".stop"); };
  return s;
}

// Runs fn on the engine thread and waits for it.
template <typename Fn>
void on_loop(server::Loop& loop, Fn fn) {
  auto done = std::make_shared<std::promise<void>>();
  auto f = done->get_future();
  REQUIRE(loop.post([done, fn](core::Engine& e) {
    fn(e);
    done->set_value();
  }));
  REQUIRE(f.wait_for(kWait) == std::future_status::ready);
}

}  // namespace

TEST_CASE("steps run in the order added: start, every batch, stop; tasks in the tasks step") {
  server::Loop loop(server::LoopOptions{});
  Trace trace;
  loop.add_step(traced(trace, "a"));
  loop.add_step(loop.tasks_step());
  loop.add_step(traced(trace, "b"));
  loop.start();
  on_loop(loop, [&](core::Engine&) { trace.add("task"); });
  loop.stop();
  const auto calls = trace.take();
  REQUIRE(calls.size() >= 6);
  CHECK(calls[0] == "a.start");
  CHECK(calls[1] == "b.start");
  // Batches: a.run, (task,) b.run, repeated; the task runs between a and b of one batch.
  bool task_between = false;
  for (std::size_t i = 2; i + 2 < calls.size(); ++i)
    if (calls[i] == "task") task_between = calls[i - 1] == "a.run" && calls[i + 1] == "b.run";
  CHECK(task_between);
  CHECK(calls[calls.size() - 2] == "a.stop");
  CHECK(calls.back() == "b.stop");
}

TEST_CASE("one now per batch: every step and every event of a batch share it") {
  server::Loop loop(server::LoopOptions{});
  std::mutex mu;
  std::vector<std::pair<core::MonoTime, core::MonoTime>> seen;  // (first step's now, last's)
  std::vector<core::MonoTime> event_times;
  core::MonoTime first{};
  server::Step feeder;
  feeder.name = "feeder";
  feeder.run = [&](server::Batch& b) {
    first = b.now;
    core::Event e;
    e.kind = core::EventKind::Connected;
    e.device = b.engine.intern("dev-" + std::to_string(event_times.size() % 3));
    e.at = b.now;
    b.feed(e);
  };
  server::Step checker;
  checker.name = "checker";
  checker.run = [&](server::Batch& b) {
    std::lock_guard<std::mutex> lock(mu);
    seen.emplace_back(first, b.now);
    for (const auto& e : b.events) event_times.push_back(e.at);
    CHECK(b.events.size() == 1);  // what this batch fed, not earlier batches'
  };
  loop.add_step(feeder);
  loop.add_step(loop.engine_step());
  loop.add_step(loop.tasks_step());
  loop.add_step(checker);
  loop.start();
  for (int i = 0; i < 3; ++i) on_loop(loop, [](core::Engine&) {});
  loop.stop();
  REQUIRE(seen.size() >= 3);
  for (const auto& [a, b] : seen) CHECK(a == b);
  for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i - 1].second <= seen[i].second);
}

TEST_CASE("the engine step drains the batch's transitions and forgotten ids into the batch") {
  server::Loop loop(server::LoopOptions{});
  std::mutex mu;
  std::vector<core::Transition> transitions;
  std::size_t fed = 0;
  server::Step in;
  in.name = "in";
  in.run = [&](server::Batch& b) {
    if (fed++ != 0) return;  // one connect, in the first batch
    core::Event e;
    e.kind = core::EventKind::Connected;
    e.device = b.engine.intern("dev-1");
    e.at = b.now;
    b.feed(e);
    CHECK(b.transitions.empty());  // not drained before the engine step
  };
  server::Step out;
  out.name = "out";
  out.run = [&](server::Batch& b) {
    std::lock_guard<std::mutex> lock(mu);
    transitions.insert(transitions.end(), b.transitions.begin(), b.transitions.end());
  };
  loop.add_step(in);
  loop.add_step(loop.engine_step());
  loop.add_step(loop.tasks_step());
  loop.add_step(out);
  loop.start();
  on_loop(loop, [](core::Engine&) {});
  on_loop(loop, [](core::Engine&) {});  // a later batch: stats of the first one published
  const auto stats = loop.stats();
  loop.stop();
  REQUIRE(transitions.size() == 1);
  CHECK(transitions[0].from == core::State::Unknown);
  CHECK(transitions[0].to == core::State::Online);
  CHECK(stats.running);
  CHECK(stats.devices == 1);
  CHECK(stats.transitions_total[static_cast<std::size_t>(core::State::Online)] == 1);
  CHECK(stats.devices_by_state[static_cast<std::size_t>(core::State::Online)] == 1);
  CHECK_FALSE(loop.stats().running);
}

TEST_CASE("wake runs a batch without waiting for the tick interval") {
  server::LoopOptions o;
  o.tick_interval = std::chrono::hours(1);  // only a wake can start a batch
  server::Loop loop(o);
  auto ran = std::make_shared<std::promise<void>>();
  bool armed = false;
  server::Step s;
  s.name = "input";
  s.run = [&, ran](server::Batch&) {
    if (armed) {
      armed = false;
      ran->set_value();
    }
  };
  loop.add_step(s);
  loop.add_step(loop.tasks_step());
  loop.start();
  on_loop(loop, [&](core::Engine&) { armed = true; });  // tasks also wake
  auto f = ran->get_future();
  loop.wake();
  CHECK(f.wait_for(kWait) == std::future_status::ready);
  loop.stop();
}

TEST_CASE("post: false before start and after stop; a task never run is dropped, not run late") {
  server::Loop loop(server::LoopOptions{});
  CHECK_FALSE(loop.post([](core::Engine&) {}));
  // No tasks step: a posted task waits until stop drops it, and its promise breaks.
  loop.start();
  auto p = std::make_shared<std::promise<int>>();
  auto f = p->get_future();
  CHECK(loop.post([p](core::Engine&) { p->set_value(1); }));
  loop.stop();
  p.reset();
  REQUIRE(f.wait_for(kWait) == std::future_status::ready);
  CHECK_THROWS_AS(f.get(), std::future_error);
  CHECK_FALSE(loop.post([](core::Engine&) {}));
}

TEST_CASE("issue 16: a batch over 10 ms is counted slow, sets the longest batch, logs its step") {
  // The log goes to stderr: read it back from a temp file for the duration.
  std::fflush(stderr);
  char path[] = "/tmp/presence-loop-test-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  const int saved = ::dup(2);
  ::dup2(fd, 2);
  server::LoopOptions o;
  o.tick_interval = std::chrono::hours(1);
  server::Loop loop(o);
  loop.add_step(loop.tasks_step());
  loop.start();
  // A task that holds the engine thread for 25 ms (what a big snapshot copy or a full scan does).
  on_loop(loop, [](core::Engine&) { std::this_thread::sleep_for(std::chrono::milliseconds(25)); });
  on_loop(loop, [](core::Engine&) {});  // the next batch: the stats of the slow one are out
  const auto s = loop.stats();
  loop.stop();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string logged;
  char buf[4096];
  ::lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) logged.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  ::unlink(path);
  CHECK(s.batches_slow_total >= 1);
  CHECK(s.batch_max_us >= 25'000);
  CHECK(logged.find("engine: a batch held the engine thread") != std::string::npos);
  CHECK(logged.find("(longest step: tasks, ") != std::string::npos);
}
