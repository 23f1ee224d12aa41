#include "presence/server/loop.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "presence/common/log.h"
#include "presence/core/words.h"
#include "presence/ingest/output.h"

namespace presence::server {

using core::Duration;
using core::MonoTime;
using core::mono_now;
using common::log;
using common::LogLevel;

namespace {

// Device transition lines at info level: a steady 20 a second with bursts of 200 (a site going
// down is logged whole); beyond that they are counted and summarised (issue 19 item 9).
constexpr double kTransitionLinesPerSecond = 20;
constexpr double kTransitionLinesBurst = 200;
// The engine thread wakes at most once per kBatchWindow while messages keep coming (issue 6:
// presenced must cost less CPU per message than the broker). 1 ms is nothing against presence
// windows of seconds, and bounds wake-ups to 1,000/s at any message rate.
constexpr std::chrono::microseconds kBatchWindow{1000};

}  // namespace

struct Loop::Impl {
  LoopOptions opt;
  core::Engine engine;
  std::vector<Step> steps;
  mutable common::RateLimitedLog rlog;

  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;           // under mu: a step's inbox has input
  bool stopping = false;        // under mu
  bool accepting_tasks = false;  // under mu: post() takes tasks
  std::vector<Task> tasks;      // under mu
  std::thread thread;
  bool running = false;

  // Engine-thread state.
  std::vector<Task> running_tasks;
  common::LineBudget transition_lines{kTransitionLinesPerSecond, kTransitionLinesBurst};
  std::chrono::steady_clock::time_point last_transition_summary{};
  LoopStats local;

  mutable std::mutex stats_mu;
  LoopStats shared;

  explicit Impl(LoopOptions o) : opt(std::move(o)), engine(opt.core), rlog(opt.log_rate_limit) {}

  // The "engine" step: tick with the batch's now, then what changed, counted and logged.
  void tick(Batch& b) {
    engine.tick(b.now);
    b.transitions.clear();
    engine.drain(b.transitions);
    b.forgotten.clear();
    engine.drain_forgotten(b.forgotten);
    const auto wall = std::chrono::steady_clock::now();
    const bool debug = common::log_level() == LogLevel::Debug;  // the operator asked for every line
    for (const auto& t : b.transitions) {
      ++local.transitions_total[static_cast<std::size_t>(t.to)];
      if (!debug && !transition_lines.take(wall)) continue;
      std::string line = "device " + std::string(engine.id_of(t.device)) + ": " +
                         core::to_string(t.from) + " -> " + core::to_string(t.to) + " (" +
                         core::to_string(t.cause);
      if (t.cause == core::Cause::Disconnected)
        line += std::string(", ") + core::to_string(t.disconnect_reason);
      log(LogLevel::Info, line + ")");
    }
    // What was left out is said in one line per log.rate_limit, and counted in /metrics.
    if (wall - last_transition_summary >= opt.log_rate_limit) {
      if (const auto n = transition_lines.take_suppressed(); n > 0) {
        log(LogLevel::Info, std::to_string(n) + " device transition line(s) not logged (more than " +
                                std::to_string(static_cast<int>(kTransitionLinesPerSecond)) +
                                "/s); every transition is counted in presence_transitions_total");
        last_transition_summary = wall;
      }
    }
    local.transition_lines_suppressed_total = transition_lines.suppressed_total();
    note_refusals();
  }

  // Bounds reached (issue 19 items 3 and 9): counted always, said once per log.rate_limit.
  void note_refusals() {
    const core::EngineCounters c = engine.counters();
    if (c.label_keys_refused > local.label_keys_refused_total)
      rlog.log(LogLevel::Warn, "bound:label_keys",
               "labels: label refused, more than presence.max_label_keys (" +
                   std::to_string(opt.core.max_label_keys) +
                   ") distinct keys; the device keeps its other labels (" +
                   std::to_string(c.label_keys_refused) + " refused so far)");
    if (c.label_values_refused > local.label_values_refused_total)
      rlog.log(LogLevel::Warn, "bound:label_values",
               "labels: label refused, more than presence.max_label_values (" +
                   std::to_string(opt.core.max_label_values) +
                   ") distinct key=value pairs; the device keeps its other labels (" +
                   std::to_string(c.label_values_refused) + " refused so far)");
    if (c.devices_refused > local.devices_refused_total)
      rlog.log(LogLevel::Warn, "bound:devices",
               "devices: message about a new id dropped, presence.max_devices (" +
                   std::to_string(opt.core.max_devices) + ") reached (" +
                   std::to_string(c.devices_refused) + " refused so far)");
    local.label_keys_refused_total = c.label_keys_refused;
    local.label_values_refused_total = c.label_values_refused;
    local.devices_refused_total = c.devices_refused;
    local.devices_forgotten_total = c.devices_forgotten;
    local.heartbeats_reordered_total = c.reordered_heartbeats;
  }

  void run_tasks() {
    {
      std::lock_guard<std::mutex> lock(mu);
      running_tasks.swap(tasks);
    }
    for (auto& task : running_tasks) task(engine);
    running_tasks.clear();
  }

  void update_stats() {
    local.devices_by_state = engine.counts();
    local.devices = engine.device_count();
    local.engine_blind = engine.blind();
    local.restart_grace = engine.in_restart_grace();
    local.running = true;
    std::lock_guard<std::mutex> lock(stats_mu);
    shared = local;
  }

  void run() {
    {
      const MonoTime now = mono_now();
      for (auto& s : steps)
        if (s.start) s.start(engine, now);
    }
    auto last_batch = std::chrono::steady_clock::now() - kBatchWindow;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait_for(lock, opt.tick_interval, [&] { return woken || stopping; });
        if (stopping) break;
      }
      // Under sustained traffic, collect at least kBatchWindow of messages per batch instead of
      // waking for each one; a message after a quiet spell is handled at once.
      if (std::chrono::steady_clock::now() - last_batch < kBatchWindow)
        std::this_thread::sleep_until(last_batch + kBatchWindow);
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stopping) break;
        woken = false;
      }
      last_batch = std::chrono::steady_clock::now();
      // One "now" per batch (STYLE.md habit 3): every event in it and the tick share it.
      Batch batch{engine, mono_now(), {}, {}, {}};
      // Each step timed, so a slow batch names its step (issue 16 item 3: at 1 M devices batches
      // over 10 ms came from more than the snapshot copy). Wall time: a descheduled engine thread
      // counts too, as it does for everything waiting behind it.
      const Step* slowest = nullptr;
      auto slowest_took = std::chrono::steady_clock::duration::zero();
      for (auto& s : steps) {
        if (!s.run) continue;
        const auto t0 = std::chrono::steady_clock::now();
        s.run(batch);
        const auto d = std::chrono::steady_clock::now() - t0;
        if (d > slowest_took) {
          slowest_took = d;
          slowest = &s;
        }
      }
      const auto took = std::chrono::steady_clock::now() - last_batch;
      if (took > kSlowBatch) {
        ++local.batches_slow_total;
        auto ms = [](std::chrono::steady_clock::duration d) {
          return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count() /
                                1000.0)
              .substr(0, 6);
        };
        rlog.log(LogLevel::Info, "slow_batch",
                 "engine: a batch held the engine thread " + ms(took) + " ms (longest step: " +
                     (slowest ? slowest->name : std::string("none")) + ", " + ms(slowest_took) +
                     " ms); " + std::to_string(local.batches_slow_total) +
                     " batch(es) over 10 ms so far (presence_engine_batches_slow_total)");
      }
      local.batch_max_us = std::max<std::int64_t>(
          local.batch_max_us,
          std::chrono::duration_cast<std::chrono::microseconds>(took).count());
      update_stats();
    }
    const MonoTime now = mono_now();
    for (auto& s : steps)
      if (s.stop) s.stop(engine, now);
    local.running = false;
    std::lock_guard<std::mutex> lock(stats_mu);
    shared = local;
  }
};

Loop::Loop(LoopOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Loop::~Loop() { stop(); }

core::Engine& Loop::engine() { return impl_->engine; }

void Loop::add_step(Step step) { impl_->steps.push_back(std::move(step)); }

Step Loop::engine_step() {
  Step s;
  s.name = "engine";
  s.run = [impl = impl_.get()](Batch& b) { impl->tick(b); };
  return s;
}

Step Loop::tasks_step() {
  Step s;
  s.name = "tasks";
  s.run = [impl = impl_.get()](Batch&) { impl->run_tasks(); };
  return s;
}

void Loop::start() {
  if (impl_->running) return;
  impl_->running = true;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->accepting_tasks = true;
  }
  impl_->thread = std::thread([this] { impl_->run(); });
}

void Loop::stop() {
  if (!impl_->running) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
    impl_->accepting_tasks = false;
  }
  impl_->cv.notify_one();
  if (impl_->thread.joinable()) impl_->thread.join();
  {
    // Tasks that never ran: dropping them breaks their promises, so waiting callers return now.
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->tasks.clear();
  }
  impl_->running = false;
}

void Loop::wake() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->woken = true;
  }
  impl_->cv.notify_one();
}

bool Loop::post(Task task) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->accepting_tasks) return false;
    impl_->tasks.push_back(std::move(task));
    impl_->woken = true;
  }
  impl_->cv.notify_one();
  return true;
}

LoopStats Loop::stats() const {
  std::lock_guard<std::mutex> lock(impl_->stats_mu);
  return impl_->shared;
}

}  // namespace presence::server
