// Alert delivery: intents in from the engine thread, durable outbox, one delivery thread per sink.
//
//   engine thread --submit()--> inbox --writer thread--> Outbox (write + fsync) --> sink threads
//
// submit() only copies into the inbox and never waits for disk or network (issue 5: never block
// the engine thread). The writer makes a whole inbox batch durable with one fsync before any sink
// thread can see it, so nothing is sent that a crash could forget. Each sink thread sends its
// queue strictly in order (so per dedup_key a resolve never overtakes its trigger), retries with
// backoff, and records each outcome durably before taking the next entry: after a crash only the
// request that was in flight is sent again (at-least-once; dedup_key makes it harmless).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "presence/alert/outbox.h"
#include "presence/alert/sink.h"
#include "presence/core/decision.h"
#include "presence/common/log.h"
#include "presence/common/result.h"
#include "presence/store/snapshot.h"

namespace presence::alert {

struct DispatcherConfig {
  OutboxConfig outbox;
  // Converts AlertIntent::at (steady) to wall clock for payload timestamps. Left default, start()
  // takes one assuming MonoTime counts std::chrono::steady_clock milliseconds since its epoch.
  // An intent whose at is 0 is stamped with the wall time it is written to the outbox.
  store::WallAnchor anchor;
  common::LogFn log;
  // HA pair (issue 13, presence/ha/node.h): asked before every request. Send; Skip (the
  // notification log says it was sent already: settled as delivered, not sent); Hold (this
  // instance may not send now: asked again shortly, the entry stays queued). Unset = Send.
  enum class Gate { Send, Skip, Hold };
  std::function<Gate(const std::vector<OutboxEntry>&)> gate;
  std::function<void(const std::vector<OutboxEntry>&)> after_send;  // after a delivered request
  // HA: entries just made durable, before any sink thread can take them (the leader records each
  // page in etcd at queue time, so a page queued behind the request in flight survives its
  // death); and entries settled without a delivery (dead-lettered), so that record goes too.
  std::function<void(const std::vector<OutboxEntry>&)> queued;
  std::function<void(const std::vector<OutboxEntry>&)> dropped;
};

// Counters for /metrics (the API room exports them; names match docs/alerts.md).
struct SinkStats {
  std::string name;
  std::uint64_t sent = 0;           // entries delivered (a Slack summary counts each entry)
  std::uint64_t requests = 0;       // HTTP requests made
  std::uint64_t failed = 0;         // requests that did not deliver (retried or dead-lettered)
  std::uint64_t retried = 0;        // requests that were followed by a retry
  std::uint64_t dead_lettered = 0;  // entries rejected for good (4xx)
  std::uint64_t skipped = 0;        // intents this kind of sink does not carry (PagerDuty: Notify)
  std::uint64_t summaries = 0;      // Slack summary messages delivered
  std::uint64_t coalesced = 0;      // entries replaced by a later one (queue bound)
  std::uint64_t dropped = 0;        // entries lost to the queue bound
  std::size_t depth = 0;            // queued, including the one in flight
  std::int64_t oldest_age_ms = 0;   // age of the oldest queued entry (0 when empty)
  bool failing = false;             // the last request did not deliver
};

struct DispatcherStats {
  std::vector<SinkStats> sinks;
  OutboxStats outbox;
  std::int64_t outbox_oldest_age_ms = 0;
  std::uint64_t submitted = 0;  // intents accepted by submit()
  std::uint64_t clamped = 0;    // intents cut to the size limits (payload.h clamp_intent)
  std::size_t inbox = 0;        // intents not yet written to the outbox
};

class Dispatcher {
 public:
  Dispatcher(DispatcherConfig config, std::vector<std::unique_ptr<Sink>> sinks);
  ~Dispatcher();  // stop()
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Opens the outbox (resuming whatever it holds) and starts the threads. Fails (with why) on a
  // bad sink list (empty or duplicate names, a URL that is not http:// or https://) or an outbox
  // that cannot be written.
  common::Result<void> start();
  // Engine thread: queue intents for every sink. Never blocks on I/O.
  void submit(std::vector<core::AlertIntent> intents);
  // Any thread: one intent decided elsewhere at wall_ms (the HA hand-off of a dead leader's page,
  // presence/ha/node.h): its entries carry that decided time, not the time they are queued.
  void submit_decided(core::AlertIntent intent, std::int64_t wall_ms);
  // Outbox::holds.
  bool holds(const std::string& sink, const std::string& dedup_key,
             core::AlertIntent::Action action, std::int64_t wall_ms, std::int64_t window_ms) const {
    return outbox_.holds(sink, dedup_key, action, wall_ms, window_ms);
  }
  // Outbox::later.
  std::vector<std::pair<core::AlertIntent::Action, std::int64_t>> later(
      const std::string& sink, const std::string& dedup_key, std::int64_t wall_ms) const {
    return outbox_.later(sink, dedup_key, wall_ms);
  }
  // Outbox::unsent.
  std::vector<OutboxEntry> unsent() const { return outbox_.unsent(); }
  // Stops the threads. Intents already submitted are written to the outbox first; a request in
  // flight is cancelled (it stays queued and is sent after the next start).
  void stop();

  // For tests and shutdown: wait (bounded) until everything submitted is on disk / delivered.
  bool wait_durable(Duration timeout);
  bool wait_idle(Duration timeout);

  DispatcherStats stats() const;

  // Snapshot/outbox agreement (issue 19 item 7). The engine thread reads submitted() when it
  // copies the state for a snapshot; the saver, after wait_durable, turns it into the outbox seq
  // the snapshot reflects (every entry of an intent submitted before: seq below it). A lower
  // bound when the writer is behind: replaying an intent the snapshot already reflects is
  // harmless, missing one is not.
  std::uint64_t submitted() const { return submitted_.load(); }
  std::uint64_t outbox_seq_after(std::uint64_t submitted);
  // After that snapshot is durable: the outbox keeps what a crash would need from seq on.
  void snapshot_saved(std::uint64_t outbox_seq) { outbox_.keep_from(outbox_seq); }
  // Entries (settled or not) the outbox held at start with seq >= from, in order. Once.
  std::vector<OutboxEntry> take_history(std::uint64_t from) { return outbox_.take_history(from); }
  // Outbox::write_failing (issue 19 item 6).
  bool outbox_failing(std::string* error = nullptr) const { return outbox_.write_failing(error); }
  bool outbox_recover() { return outbox_.recover(); }

 private:
  struct SinkState;
  void run_writer();
  void run_sink(SinkState& s);

  DispatcherConfig config_;
  common::LogFn log_;
  Outbox outbox_;
  std::vector<std::unique_ptr<SinkState>> sinks_;

  mutable std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::vector<core::AlertIntent> inbox_;
  bool writing_ = false;
  bool stop_writer_ = false;
  std::atomic<std::uint64_t> submitted_{0};
  // Writer progress: (intents written, outbox seq after them), oldest first (outbox_seq_after).
  std::mutex written_mu_;
  std::deque<std::pair<std::uint64_t, std::uint64_t>> written_;
  std::uint64_t written_intents_ = 0;  // writer thread
  std::atomic<std::uint64_t> clamped_{0};
  common::LogLimiter clamp_log_;  // writer thread only

  std::mutex work_mu_;  // guards nothing but the wait below; see run_sink
  std::condition_variable work_cv_;
  std::atomic<bool> stopping_{false};

  std::thread writer_;
  bool started_ = false;
};

}  // namespace presence::alert
