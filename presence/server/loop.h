// The run loop (issue 12): one engine thread, inputs in, one "now" per batch, and ONE ordered list
// of steps that every batch runs. The rooms plug in here as steps (the MQTT link's input and
// output, alerting, the API's engine side), wired by presence/app/main.cpp in data-path order:
//
//   mqtt.in  -> engine (tick, drain) -> alerts -> api -> tasks -> mqtt.out
//
// Threading (issue 3): other threads only hand work over (Loop::wake for a room's own inbox,
// Loop::post for a task); every step runs on the engine thread, may use the engine freely and
// must never block on I/O. Other threads see only stats() snapshots.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "presence/core/config.h"
#include "presence/core/engine.h"

namespace presence::server {

// One batch, as every step of it sees it.
struct Batch {
  core::Engine& engine;
  const core::MonoTime now;  // read once (STYLE.md habit 3): every event and the tick share it
  // Every event fed this batch, in order (alerting's naive mode sees raw statuses, not states).
  std::vector<core::Event> events;
  // Filled by the engine step: what engine.tick and the events changed, and the ids forgotten.
  std::vector<core::Transition> transitions;
  std::vector<std::string> forgotten;

  // The only way a step hands an event to the engine.
  void feed(const core::Event& e) {
    engine.on_event(e);
    events.push_back(e);
  }
};

struct Step {
  std::string name;
  std::function<void(core::Engine&, core::MonoTime)> start;  // before the first batch; optional
  std::function<void(Batch&)> run;                           // every batch; optional
  std::function<void(core::Engine&, core::MonoTime)> stop;   // after the last batch; optional
};

struct LoopOptions {
  core::Config core;
  // Longest wait without input: the engine ticks at least this often.
  core::Duration tick_interval{std::chrono::milliseconds(100)};
  core::Duration log_rate_limit{std::chrono::seconds(10)};  // repeated warnings: one line per key
};

// A batch longer than this holds every message and API read behind it (issue 16: no engine
// pause over 10 ms at 1 M devices); counted in presence_engine_batches_slow_total.
inline constexpr std::chrono::milliseconds kSlowBatch{10};

struct LoopStats {
  std::array<std::size_t, 5> devices_by_state{};     // per core::State
  std::size_t devices = 0;
  std::array<std::uint64_t, 5> transitions_total{};  // per new core::State
  std::uint64_t transition_lines_suppressed_total = 0;  // device transition log lines left out
  // Refused by the engine's bounds (core::Config max_label_keys, max_label_values, max_devices).
  std::uint64_t label_keys_refused_total = 0;
  std::uint64_t label_values_refused_total = 0;
  std::uint64_t devices_refused_total = 0;
  std::uint64_t devices_forgotten_total = 0;  // presence.forget_after, forget_unconfirmed_after
  std::uint64_t heartbeats_reordered_total = 0;  // core::Config::reorder_window
  // Engine-thread pauses (issue 16 item 3): the longest batch since start (every step of it:
  // ingest, tick, alerts and the snapshot copy, API tasks) and the batches over kSlowBatch.
  std::int64_t batch_max_us = 0;
  std::uint64_t batches_slow_total = 0;
  bool engine_blind = true;  // the engine's own view (broker restarts, our connection's loss)
  bool restart_grace = false;
  bool running = false;
};

class Loop {
 public:
  explicit Loop(LoopOptions options);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Before start() (or on the engine thread): rooms read the engine's configuration from it.
  core::Engine& engine();

  // Before start(): appended to the ordered list. start and run hooks go in list order, stop
  // hooks too (alerting's final snapshot before the MQTT link's final flush and disconnect).
  void add_step(Step step);
  // The loop's own steps, placed by the wiring: "engine" ticks the engine with the batch's now,
  // drains transitions and forgotten ids into the batch, counts and logs them; "tasks" runs
  // what post() handed over.
  Step engine_step();
  Step tasks_step();

  void start();
  // Stops the thread after the current batch, runs the stop hooks; tasks never run are dropped
  // (their promises break, so waiting callers return at once).
  void stop();

  // Any thread: a step's own inbox has input; the next batch runs at once (at most one batch
  // per batch window while input keeps coming).
  void wake();
  // Any thread: task runs on the engine thread in the "tasks" step of the next batch. False
  // (task dropped, not run) when the loop is not running.
  using Task = std::function<void(core::Engine&)>;
  bool post(Task task);

  LoopStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace presence::server
