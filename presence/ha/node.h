// One member of the HA pair (issue 13; docs/ha.md): the election loop on its own thread, the
// "may I send?" gate the alert dispatcher asks before every request, the notification log, and
// peer health. Decisions are Role/PeerWatch/covered() (role.h, pure); etcd is etcd.h.
//
// etcd keys under ha.key_prefix (default /presenced/):
//   leader            the election key: the leader's name, on its lease; created with a txn on
//                     create_revision == 0; its create_revision is the fencing token
//   members/<name>    each instance's status (role, health), on its own lease
//   log/<sink>/<dedup_key>   the notification log: the last sent notifications and the one being
//                     sent; written by the leader fenced on the election key before each request
//   sending/<sink>/<dedup_key>/<action>@<decided wall ms>   one per page the leader has queued and
//                     not settled, whole (SendingRecord, role.h): written fenced when the page is
//                     queued (and again with the log's "sending"), deleted when the sink settles it
//                     (2xx, skipped, dead-lettered); a new leader hands off what a dead one left
//                     here (docs/ha.md "Hand-off"). Action and time in the key keep a trigger and
//                     the resolve queued behind it apart.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "presence/alert/outbox_entry.h"
#include "presence/ha/etcd.h"
#include "presence/ha/role.h"
#include "presence/common/log.h"

namespace presence::ha {

struct NodeConfig {
  std::vector<std::string> endpoints;
  std::string key_prefix = "/presenced/";
  std::string name;
  Timing timing;
  // How far apart two instances' decided times for the same page may be (covered()).
  Duration match_window{std::chrono::seconds(2)};
  // A sending record older than this is deleted at a takeover, not sent: its sender has been dead
  // that long, and both instances have judged the fleet afresh since (docs/ha.md "Hand-off").
  Duration handoff_max_age{std::chrono::hours(1)};
  common::LogFn log;
};

// The alert dispatcher, as the node sees it (any thread).
struct NodeHooks {
  // Queues a page: the peer-health page (decided_wall_ms 0 = now) or a handed-off one.
  std::function<void(core::AlertIntent, std::int64_t decided_wall_ms)> submit;
  // Our outbox holds this page for this sink, unsent (alert::Outbox::holds). Unset = never.
  std::function<bool(const std::string& sink, const std::string& dedup_key,
                     core::AlertIntent::Action action, std::int64_t wall_ms,
                     std::int64_t window_ms)>
      holds;
  // Every unsent page our outbox holds (alert::Outbox::unsent): recorded in etcd when we become
  // the leader, so our own death cannot lose the pages we decided while following. Unset = none.
  std::function<std::vector<alert::OutboxEntry>()> unsent;
  // Our outbox's own later decisions for this sink and key, unsent (alert::Outbox::later): an
  // entry they supersede and the log already shows is not sent (superseded_by_own). Unset = none.
  std::function<std::vector<std::pair<core::AlertIntent::Action, std::int64_t>>(
      const std::string& sink, const std::string& dedup_key, std::int64_t wall_ms)>
      later;
  // The dedup keys the notification log shows open (docs/ha.md "Adoption of the log's open
  // pages"): handed to the policy once after each election, which adopts the pages it can judge.
  // False = not taken (the engine loop is not running yet): offered again on the next step.
  // Unset = no adoption.
  std::function<bool(std::vector<std::string> open_keys)> adopt;
};

enum class Gate { Send, Skip, Hold };

class Node {
 public:
  Node(NodeConfig config, NodeHooks hooks);
  ~Node();  // stop()
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void start();
  // Leaves the pair: revokes the lease so the peer takes over at once (rolling restart).
  void stop();

  // Dispatcher sink threads: before each request. Send (leader: recorded in the log, fenced;
  // or fail-open), Skip (the log says it was sent already), Hold (not ours to send yet).
  Gate before_send(const std::vector<alert::OutboxEntry>& batch);
  // After a delivered request: the log records it as sent.
  void after_send(const std::vector<alert::OutboxEntry>& batch);
  // Dispatcher writer thread, as pages are queued: the leader records each one (fenced) so a new
  // leader can hand off whatever we queued and did not deliver, not only the request in flight.
  void queued(const std::vector<alert::OutboxEntry>& batch);
  // Pages settled without a delivery (dead-lettered): their records go.
  void dropped(const std::vector<alert::OutboxEntry>& batch);

  bool leader() const;
  // The retained MQTT output is ours to publish: leader, or failing open (etcd gone).
  bool may_publish() const;
  RoleName role() const;  // now: leader, follower or fail_open
  std::string metrics_text() const;  // Prometheus text
  std::string status_json() const;   // GET /v1/ha

 private:
  void run();
  void step(core::MonoTime now);
  // Just elected: sends what a dead leader left in sending/ (see NodeHooks). False when etcd did
  // not answer (tried again on the next step).
  bool handoff();
  // After the hand-off: every dedup key whose newest notification (sent, as the log shows; being
  // sent, as a sending record shows; or unsent in our outbox) is a trigger, to hooks_.adopt.
  // False when etcd did not answer or the hook did not take it (tried again on the next step).
  bool adopt();
  // Every key under prefix, in pages of page_size (no answer near the client's 4 MiB cap), to
  // `each`, until a short page, or until max_keys are read with more to come (*cut = true; the
  // last page may take it past max_keys). The number read, or nullopt when etcd did not answer.
  std::optional<std::size_t> scan_prefix(const std::string& prefix, std::int64_t page_size,
                                         std::size_t max_keys,
                                         const std::function<void(const KeyValue&)>& each,
                                         bool* cut = nullptr);
  std::string log_key(const alert::OutboxEntry& e) const;
  std::string log_key(const std::string& sink, const std::string& dedup_key) const;
  std::string sending_key(const alert::OutboxEntry& e) const;
  // Writes a sending record per entry, fenced, in transactions of a bounded size. False when etcd
  // did not answer or the fence failed (the page is still recorded again before its request).
  bool record_pages(const std::vector<alert::OutboxEntry>& batch, std::int64_t fence);
  void delete_records(const std::vector<alert::OutboxEntry>& batch);
  core::MonoTime now() const;

  NodeConfig config_;
  common::LogFn log_;
  NodeHooks hooks_;
  Etcd etcd_;
  std::string leader_key_, members_prefix_, sending_prefix_;
  bool handoff_due_ = false;  // node thread only
  bool adopt_due_ = false;    // node thread only

  mutable std::mutex mu_;  // guards everything below
  Role role_;
  PeerWatch peers_;
  std::int64_t lease_ = 0;
  std::string holder_;
  std::vector<std::pair<std::string, std::string>> members_;  // name, status json
  bool peer_page_open_ = false;
  RoleName last_role_ = RoleName::Follower;
  struct InFlight {
    std::string log_key, sending_key;
    LogRecord record;
  };
  std::map<std::uint64_t, InFlight> sending_;  // outbox seq -> what after_send writes
  std::uint64_t elections_won_ = 0, fence_failures_ = 0, fenced_writes_ = 0, skipped_ = 0,
                fail_open_sends_ = 0, etcd_errors_ = 0, bad_records_ = 0,
                handed_off_ = 0, handoff_cleared_ = 0, handoff_expired_ = 0, adopt_offered_ = 0;
  common::LogLimiter etcd_log_;

  std::mutex wake_mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace presence::ha
