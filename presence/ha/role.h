// The HA pair's decisions, pure (issue 13; docs/ha.md). No sockets, threads or clocks: the etcd
// adapter (etcd.h) and the node thread (node.h) feed results in with a time, and ask what to do.
// Tested with a fake clock in test/unit/ha/role_test.cpp.
//
//   Role:     who may send. The leader holds the etcd election key (lease-backed); it believes
//             so only until its last successful keep-alive + lease TTL - safety, so a leader cut
//             off from etcd stops before the lease can pass to its peer.
//   FailOpen: etcd unreachable. An instance whose every etcd request has failed for
//             fail_open_after sends on its own, without the log (Alertmanager's choice: a page may
//             be duplicated, never lost). One successful request ends it. A leader resumed after
//             a pause has not *tried and failed* for that long, so it does not fail open: its
//             first request succeeds, its fenced write fails, it steps down.
//   PeerWatch: the Netop lesson (incident 004): the peer gone longer than peer_down_after is a
//             page, resolved when it is back.
//   covered(): has the leader already sent this page? (notification log match)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "presence/core/decision.h"
#include "presence/core/time.h"

namespace presence::ha {

using core::Duration;
using core::MonoTime;

struct Timing {
  Duration lease_ttl{std::chrono::seconds(10)};
  // A leader stops believing it leads this long before its lease could expire in etcd.
  Duration safety{std::chrono::seconds(1)};
  Duration fail_open_after{std::chrono::seconds(20)};
  Duration peer_down_after{std::chrono::seconds(30)};
};

enum class RoleName : std::uint8_t { Follower, Leader, FailOpen };
const char* to_string(RoleName);

class Role {
 public:
  explicit Role(Timing t) : t_(t) {}

  // Every etcd request's outcome (network level: true = etcd answered).
  void etcd_result(MonoTime now, bool reachable);
  // The election: won (or still held) at `sent` (the time the successful keep-alive or the
  // creating txn was *sent*, so the lease in etcd cannot have started later), with the key's
  // create_revision for fencing.
  void elected(MonoTime sent, std::int64_t create_revision);
  // Lost: the key is someone else's, a fenced write failed or the lease expired.
  void step_down();

  RoleName role(MonoTime now) const;
  bool leader(MonoTime now) const { return role(now) == RoleName::Leader; }
  bool fail_open(MonoTime now) const;
  std::int64_t fence() const { return fence_; }  // 0 when not elected
  std::optional<MonoTime> failing_since() const { return failing_since_; }

 private:
  Timing t_;
  std::int64_t fence_ = 0;
  MonoTime lease_valid_until_{};
  std::optional<MonoTime> failing_since_;
};

class PeerWatch {
 public:
  explicit PeerWatch(Duration peer_down_after) : after_(peer_down_after) {}
  // Call once at start: a peer that never appears counts from here.
  void start(MonoTime now) { last_seen_ = now; }
  void seen(MonoTime now, const std::string& name);
  // true = the "peer not running" page should be open at `now`.
  bool down(MonoTime now) const { return now - last_seen_ >= after_ && !present_; }
  void absent() { present_ = false; }
  const std::string& last_name() const { return name_; }
  MonoTime last_seen() const { return last_seen_; }
  bool present() const { return present_; }

 private:
  Duration after_;
  MonoTime last_seen_{};
  bool present_ = false;
  std::string name_;
};

// The action word the log keeps ("trigger", "resolve", "notify").
const char* action_word(core::AlertIntent::Action a);

// One notification as the log keeps it: action ("trigger"/"resolve"), the decided time on the
// wall clock, and who sent it.
struct LogItem {
  std::string action;
  std::int64_t wall_ms = 0;
  std::string by;
};

// A log record per (sink, dedup_key): the last few notifications sent, newest last, and the one
// being sent (written, fenced, before the request; moved to sent after it).
struct LogRecord {
  std::vector<LogItem> sent;
  std::optional<LogItem> sending;
  static constexpr std::size_t kKeep = 8;
};
std::string encode(const LogRecord& r);
// nullopt on a value that is not a v1 record (logged and counted by the caller).
std::optional<LogRecord> decode(const std::string& text);
// Moves `sending` into `sent` (bounded to kKeep).
void mark_sent(LogRecord& r);

// Both instances decide the same page from the same MQTT messages; their decided times differ by
// the delivery skew between two subscribers and one tick, well under `match_window`. An entry is
// covered (already sent by someone) when the record holds the same action within the window, or
// anything sent later than the window after it (a later notification for the key supersedes it:
// PagerDuty's state per dedup_key is the last action). A `sending` item is NOT covering: its
// sender may have died before the request left (then the new leader resends: the one
// duplicate a failover may cost).
bool covered(const LogRecord& r, const std::string& action, std::int64_t wall_ms,
             Duration match_window);

// An entry is also settled when one of our own later decisions for the same sink and key (still
// unsent in our outbox, `later`) is covered: the log already shows the state that decision leads
// to, so sending this earlier one could only put PagerDuty back into an older state. The case
// (ha_failover_test saw it twice): an instance whose view lagged (restart grace) decided a
// device's trigger more than match_window after the leader's, then its resolve; the leader sent
// trigger and resolve; the lagging trigger was not covered (neither the same page by the window
// nor older than a later notification by more than the window) but its resolve was, so the
// lagging instance, once leader, sent the trigger after the resolve and skipped its resolve: an
// open incident for a device that is back.
bool superseded_by_own(const LogRecord& r, const std::vector<LogItem>& later,
                       Duration match_window);

// The hand-off (docs/ha.md "Hand-off of a dead leader's pages"). When the leader queues a page it
// writes (fenced) a "sending" record holding the whole page (everything a sink needs), at
// <prefix>sending/<sink>/<dedup_key>/<action>@<decided wall ms>, and again with the log record
// before each request; when the sink settles the page (2xx, skipped, dead-lettered) it deletes
// it. A record left there is a page whose sender died (or was deposed) before delivering it. A new leader hands every such record of another instance to its own dispatcher, with
// the original decided time, unless its own outbox already holds that page: so a page decided only
// by a dead leader (its standby was cold: down, or in restart grace) is not lost.
struct SendingRecord {
  std::string sink;
  std::string by;            // the instance that was sending it
  std::int64_t wall_ms = 0;  // decided time, wall clock
  core::AlertIntent intent;  // action, dedup_key and the whole payload; `at` is not carried
};
std::string encode(const SendingRecord& r);
// nullopt on a value that is not a v1 sending record (logged, counted and deleted by the caller).
std::optional<SendingRecord> decode_sending(const std::string& text);

enum class Handoff : std::uint8_t {
  Send,     // hand it to our dispatcher: nobody delivered it and we do not hold it
  Held,     // our own outbox holds the same page: our own send replaces the record
  Stale,    // the log shows it (or a later notification for its key) sent: delete the record
  Expired,  // older than max_age: delete it, do not send (the bound on a long-dead sender's records)
};
const char* to_string(Handoff);
// What a new leader does with a sending record. `log` is the record of its (sink, dedup_key);
// `held`: our outbox holds a live entry for that sink, key and action within match_window. A
// record of our own (by == self) that our outbox does not hold was settled before we crashed
// (the outbox settles before the log is updated): Stale.
Handoff decide_handoff(const SendingRecord& r, const LogRecord& log, bool held,
                       const std::string& self, std::int64_t now_wall_ms, Duration max_age,
                       Duration match_window);

}  // namespace presence::ha
